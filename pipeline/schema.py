"""The schema of ``params.yaml``: one frozen dataclass per section, choices as ``Literal``.

Each field's type says what a key may hold: ``Annotated[..., Range(...)]`` bounds a number,
a ``Literal`` names the choices (each one also a registry's key: tests check that they agree).
Reading and validating the YAML is ``pipeline/params.py``; what one stage may read is
``pipeline/stage_params.py``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

from pipeline.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a number, attached to a field as ``Annotated[float, Range(...)]``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: low itself is not allowed
    high_open: bool = False

    def check(self, value: float, key: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        if not (low_ok and high_ok):
            raise ConfigError(f"{key}: {value!r} is outside {self}")

    def __str__(self) -> str:
        low = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        high = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{low}, {high}"


@dataclasses.dataclass(frozen=True)
class Items:
    """The fewest items a list may hold, attached as ``Annotated[list[...], Items(1)]``.

    Each list decides: ``retrieve.topk`` needs a k, while ``pretrain.lr_steps: []`` is a
    constant learning rate. A list without ``Items`` may be empty.
    """

    minimum: int

    def check(self, value: list, key: str) -> None:
        if len(value) < self.minimum:
            raise ConfigError(
                f"{key}: must not be empty" if self.minimum == 1 else f"{key}: needs {self.minimum} items"
            )


Count = Annotated[int, Range(low=1)]  # epochs, batch sizes, sizes: at least 1
NonNegativeInt = Annotated[int, Range(low=0)]
Positive = Annotated[float, Range(low=0, low_open=True)]
NonNegative = Annotated[float, Range(low=0)]
Share = Annotated[float, Range(low=0, high=1)]
Fraction = Annotated[float, Range(low=0, high=1, high_open=True)]  # momenta, dropout: in [0, 1)
Jobs = Annotated[int, Range(low=-1)]  # joblib: -1 is every core, 0 is refused below

Arch = Literal["r3d", "r21d", "r21d_tv", "c3d", "r3d18", "i3d", "s3d"]
Modality = Literal["rgb", "res", "u", "v"]
IntraNegative = Literal["repeat", "shuffle"]
Method = Literal["cmc", "cmc_upstream", "moco", "simclr"]
ClipScores = Literal["softmax", "logits"]
DatasetFormat = Literal["ucf101", "hmdb51", "list", "folder", "kinetics_csv", "unlabeled"]


@dataclasses.dataclass(frozen=True)
class DatasetParams:
    """Where the videos and their lists are, and in which layout."""

    format: DatasetFormat  # preprocess/formats.py
    root: str  # the videos
    lists: str  # the lists folder (ucf101, hmdb51, list), the CSV (kinetics_csv), or the root (folder, unlabeled)
    split: Annotated[int, Range(low=1, high=3)]  # official split 1, 2 or 3 (ucf101, hmdb51)
    test_ratio: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)]  # folder: groups drawn for test
    split_seed: int  # folder: the seed of that draw
    max_reject_share: Share  # fail when more than this share of the dataset's videos is rejected


@dataclasses.dataclass(frozen=True)
class DemoParams:
    """One procedural demo dataset (classes differ by motion only)."""

    layout: Literal["ucf101", "hmdb51"]  # which official list format the generator writes
    seed: int  # appearances (backgrounds, objects, placements) and speeds
    motions: Annotated[list[str], Items(1)]  # the classes, in label order: names of preprocess.demo.MOTIONS
    videos: Count  # video i has class i % len(motions): +1 adds exactly one video
    clips_per_group: Count
    test_every: Annotated[int, Range(low=2)]  # every test_every-th group goes to the test split
    extra_test_groups: (
        NonNegativeInt  # groups after those of ``videos``, test only: a larger test split, same train split
    )
    frames: Count
    height: Count
    width: Count
    fps: Count
    speed: Positive  # scales every motion's rate (drift, roll and zoom per frame)
    dots: NonNegativeInt  # small high-contrast discs on each group's scene (0: the smooth texture alone)
    n_jobs: Jobs  # processes rendering and encoding the videos (-1: every core); the bytes do not depend on it


@dataclasses.dataclass(frozen=True)
class ShardsParams:
    """Shard ids: one dvc stage per id; the shard count is len(ids)."""

    ids: Annotated[list[NonNegativeInt], Items(1)]


@dataclasses.dataclass(frozen=True)
class FramesParams:
    height: Count  # stored frame height (the paper: 128)
    width: Count  # stored frame width (the paper: 171)
    min_frames: Count  # shorter videos are rejected: one clip must fit
    n_jobs: Jobs  # joblib worker processes for decoding
    decode_timeout: Positive  # seconds: a video whose ffmpeg decode takes longer is rejected


@dataclasses.dataclass(frozen=True)
class H264Params:
    """libx264 settings of ``storage.encoding: h264`` (preprocess/h264.py)."""

    crf: Annotated[int, Range(low=0, high=51)]  # constant quality: lower is larger and closer to the frames
    gop: Count  # frames between keyframes: a clip decodes at most gop - 1 frames before its first
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


@dataclasses.dataclass(frozen=True)
class StorageParams:
    """How frames, residuals and flow are stored in the HDF5 shards."""

    encoding: Literal["raw", "lzf", "jpeg", "h264"]  # jpeg: encoded frames; h264: a video stream; lzf: HDF5 filter
    jpeg_quality: Annotated[int, Range(low=1, high=100)]
    h264: H264Params


@dataclasses.dataclass(frozen=True)
class TVL1Params:
    """cv2.optflow.DualTVL1OpticalFlow_create arguments."""

    tau: float
    lambda_: float
    theta: float
    nscales: int
    warps: int
    epsilon: float
    inner_iterations: int
    outer_iterations: int
    scale_step: float
    gamma: float
    median_filtering: int
    use_initial_flow: bool  # warm-start each pair from the previous pair's flow


@dataclasses.dataclass(frozen=True)
class TorchFlowParams:
    """Where and how wide the PyTorch TV-L1 (motion.backend: torch) runs."""

    device: Literal["auto", "cpu", "cuda"]  # auto: the GPU when there is one
    batch: Count  # frame pairs per call; with tvl1.use_initial_flow also the videos read at once
    compile: bool  # torch.compile the inner iteration (a one-off compilation per stage process)


@dataclasses.dataclass(frozen=True)
class MotionParams:
    flow: Literal["tvl1", "none"]  # none: residuals only (no u/v view), no TV-L1 cost
    backend: Literal["opencv", "torch"]  # opencv: one video per pool worker; torch: batched pairs, GPU or CPU
    bound: Positive  # flow is clipped to +-bound pixels before uint8 quantisation
    n_jobs: Jobs  # opencv: joblib worker processes; torch on the CPU: intra-op threads
    tvl1: TVL1Params
    torch: TorchFlowParams


@dataclasses.dataclass(frozen=True)
class PoolParams:
    """Where the frames and motion stages run their per-video tasks (outputs do not depend on it)."""

    backend: Literal["loky", "dask"]  # loky: local processes; dask: a dask.distributed cluster
    scheduler: str  # dask: the scheduler's address, e.g. tcp://10.0.0.5:8786; loky: ignored
    connect_timeout: Positive  # seconds to wait for the scheduler


@dataclasses.dataclass(frozen=True)
class ClipParams:
    length: Count  # frames per clip (the paper: 16)
    crop: Count  # square crop side (the paper: 112)
    eval_clips: Count  # evenly spaced clips per video for features and video-level testing


@dataclasses.dataclass(frozen=True)
class ModelParams:
    arch: Arch
    width: Count  # stem channels (the paper: 64)


@dataclasses.dataclass(frozen=True)
class RuntimeParams:
    device: Literal["auto", "cpu", "cuda"]
    bf16: bool  # autocast to bfloat16 on CUDA
    cpu_bf16: bool  # autocast to bfloat16 on CPUs with native bf16 (avx512_bf16 or AMX); others stay float32
    channels_last: bool  # channels_last_3d memory format on CUDA
    cudnn_benchmark: bool
    compile: bool  # torch.compile the encoders
    workers: NonNegativeInt  # data-loader worker processes


@dataclasses.dataclass(frozen=True)
class LaunchParams:
    """How many processes pretraining, feature extraction and fine-tuning run in (pipeline/torchrun.py)."""

    nnodes: Count  # machines; more than one: every node runs the stage (launch.srun, or by hand)
    nproc_per_node: Count  # processes per machine, one per GPU; nnodes x nproc_per_node > 1: torchrun
    srun: bool  # start the stage on every node of the SLURM allocation with srun (dvc repro on its first node)
    rdzv_endpoint: str  # host:port of the c10d rendezvous when nnodes > 1 (srun: the port on the first node)
    rdzv_timeout: Count  # seconds a node waits for the rendezvous (reaching it, then every node joining)
    sync_batchnorm: bool  # batch statistics over every rank's share of the global batch, as one process would


PretrainedModel = Literal["iic", "baseline"]


@dataclasses.dataclass(frozen=True)
class BaselineParams:
    """The baseline: the pretrain section with these keys changed (pipeline/variants.py)."""

    intra_neg: bool  # the paper's baseline: the same objective without intra-negatives


@dataclasses.dataclass(frozen=True)
class PretrainParams:
    models: list[PretrainedModel]  # one pretrain stage each; [iic]: one pretraining, no baseline
    baseline: BaselineParams
    datasets: Annotated[list[str], Items(1)]  # keys of datasets: pretraining reads the union of their train splits
    method: Method  # the contrastive method (train/methods.py)
    modality: Modality  # view 2
    intra_neg: bool  # false: the plain CMC baseline
    neg: IntraNegative
    nce_k: Count  # cmc: negatives per anchor, at most train videos - 1; moco: queue length; simclr: unused
    nce_t: Positive
    nce_m: Fraction  # cmc: memory-bank momentum
    moco_m: Fraction  # moco: key-encoder EMA momentum
    feat_dim: Count
    epochs: Count
    batch_size: Count
    lr: Positive
    momentum: Fraction
    weight_decay: NonNegative
    lr_steps: list[Count]  # epochs where the lr is multiplied by lr_decay; [] keeps it constant
    lr_decay: Annotated[float, Range(low=0, high=1, low_open=True)]
    seed: int
    checkpoint_every: Count  # epochs between resumable checkpoints


@dataclasses.dataclass(frozen=True)
class FeaturesParams:
    batch_size: Count
    random_init_seed: int


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    datasets: Annotated[list[str], Items(1)]  # keys of datasets: features, retrieval and fine-tuning run on each


@dataclasses.dataclass(frozen=True)
class IntervalsParams:
    """Bootstrap intervals over the test videos (retrieval, fine-tuning)."""

    resamples: Annotated[int, Range(low=100)]  # resampled test sets (1,000 or more for a 95% interval)
    seed: int
    level: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)]


@dataclasses.dataclass(frozen=True)
class RetrieveParams:
    topk: Annotated[list[Count], Items(1)]


@dataclasses.dataclass(frozen=True)
class KnnParams:
    """Weighted kNN on the frozen features (evaluate/knn.py)."""

    k: Count  # neighbours that vote
    temperature: Positive  # a neighbour at cosine s votes exp(s / temperature)
    topk: Annotated[list[Count], Items(1)]


@dataclasses.dataclass(frozen=True)
class LinearParams:
    """The linear probe on the frozen features (evaluate/linear_probe.py)."""

    weight_decays: Annotated[list[Positive], Items(1)]  # the candidates, chosen among on validation groups
    val_videos: Count  # whole train groups held out to choose the weight decay, up to this many videos
    seed: int  # the draw of those groups
    max_iter: Count  # L-BFGS iterations per fit
    topk: Annotated[list[Count], Items(1)]


@dataclasses.dataclass(frozen=True)
class GalleryParams:
    """The retrieval gallery PNG (evaluate/gallery.py)."""

    queries: Count  # test videos shown, round-robin over the classes
    neighbours: Count  # train neighbours shown per model
    feature: str  # rgb, the view-2 modality's name or merge: whose similarity ranks the neighbours


@dataclasses.dataclass(frozen=True)
class TemporalParams:
    """The temporal-sensitivity measures (evaluate/temporal.py): what intra-negatives are meant to change."""

    clips: Count  # evenly spaced clips per video: test clips measured, train clips fit the arrow-of-time probe
    seed: int  # the repeated frame and the swapped chunks: the same for every model
    weight_decay: NonNegative  # the arrow-of-time probe's L2 penalty on standardised features
    max_iter: Count  # its L-BFGS iterations
    batch_size: Count


@dataclasses.dataclass(frozen=True)
class MonitorParams:
    """The learning curve while pretraining (evaluate/monitor.py): kNN and retrieval top-1."""

    every: NonNegativeInt  # epochs between measurements; 0 turns the monitor off
    dataset: str  # a labelled key of datasets: its test split queries its train split
    clips: Count  # evenly spaced clips per video (evaluation uses clip.eval_clips)


SelectBy = Literal["accuracy", "loss"]


@dataclasses.dataclass(frozen=True)
class FinetuneParams:
    modality: Modality  # input of the fine-tuned network
    dropout: Fraction  # before the new linear classifier (upstream: none, 0.0)
    clip_scores: ClipScores  # a video's score: the mean of its clips' softmax probabilities or logits (upstream)
    epochs: Count
    batch_size: Count
    lr: Positive
    momentum: Fraction
    weight_decay: NonNegative
    val_videos: Count  # train videos held out for model selection (whole groups)
    select_by: SelectBy  # the kept epoch has the best validation accuracy or loss
    plateau_factor: Annotated[float, Range(low=0, high=1, low_open=True, high_open=True)]
    plateau_patience: NonNegativeInt
    min_lr: NonNegative
    seed: int


@dataclasses.dataclass(frozen=True)
class Params:
    datasets: dict[str, DatasetParams]  # every dataset of the experiment, by name
    demo: dict[str, DemoParams]  # the procedural demo datasets, by name
    evaluate: EvaluateParams
    shards: ShardsParams
    frames: FramesParams
    storage: StorageParams
    pool: PoolParams
    motion: MotionParams
    clip: ClipParams
    model: ModelParams
    runtime: RuntimeParams
    launch: LaunchParams
    pretrain: PretrainParams
    monitor: MonitorParams
    features: FeaturesParams
    intervals: IntervalsParams
    retrieve: RetrieveParams
    knn: KnnParams
    linear: LinearParams
    temporal: TemporalParams
    gallery: GalleryParams
    finetune: FinetuneParams


def yaml_key(field: dataclasses.Field) -> str:
    """The key of a field in params.yaml: ``lambda`` is a Python keyword, so its field is ``lambda_``."""
    return field.name.rstrip("_")
