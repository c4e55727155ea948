from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from pipeline.errors import ConfigError, NonFiniteError
from pipeline.runtime import Runtime
from pipeline.schema import BaselineParams, ModelParams, PretrainParams
from preprocess.shards import ShardReader
from tests.conftest import needs_cuda
from tests.shards_fixture import make_tiny_shards
from train.checkpoint import build_encoder, load_checkpoint, load_encoder
from train.data import to_model_input
from train.pretrain import PretrainSetup, pretrain

CPU = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    folder = make_tiny_shards(tmp_path_factory.mktemp("shards"))
    return ShardReader(folder / "frames", folder / "motion", [0])


def _setup(arch: str = "r3d", **changes) -> PretrainSetup:
    pretrain = PretrainParams(
        models=["iic"],
        baseline=BaselineParams(intra_neg=False),
        datasets=["demo"],
        method="cmc",
        modality="res",
        intra_neg=True,
        neg="repeat",
        nce_k=5,
        nce_t=0.07,
        nce_m=0.5,
        moco_m=0.99,
        feat_dim=8,
        epochs=1,
        batch_size=4,
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        lr_steps=[2],
        lr_decay=0.2,
        seed=1,
        checkpoint_every=1,
    )
    return PretrainSetup(ModelParams(arch=arch, width=4), dataclasses.replace(pretrain, **changes), 16, 24)


COMBOS = [(m, True, n) for m, n in itertools.product(("res", "u", "v", "rgb"), ("repeat", "shuffle"))]
COMBOS += [(m, False, "repeat") for m in ("res", "u", "v", "rgb")]


@pytest.mark.parametrize("modality, intra_neg, neg", COMBOS)
def test_one_training_epoch_per_modality_and_negative_kind(reader, tmp_path, modality, intra_neg, neg):
    setup = _setup(modality=modality, intra_neg=intra_neg, neg=neg)
    rows = []
    result = pretrain(
        reader,
        setup,
        CPU,
        tmp_path / "model.pt",
        tmp_path / "resume.pt",
        workers=0,
        on_epoch=lambda row, resumed: rows.append((row, resumed)),
    )
    row = result["curves"][0]
    assert torch.isfinite(torch.tensor(row["loss"]))
    assert 0 < row["p_pos_view1"] < 1
    config, encoder = load_encoder(tmp_path / "model.pt")  # rebuilt from the stored config
    assert config["view2"] == modality
    x = torch.rand(2, 3, 16, 24, 24)
    assert encoder(x).shape == (2, 8)
    assert not (tmp_path / "resume.pt").exists()  # finished runs leave no resume state
    assert rows == [(result["curves"][0], False)]
    assert list(rows[0][0]) == ["epoch", "loss", "p_pos_view1", "p_pos_view2", "lr"]


@pytest.mark.parametrize("arch", ["r21d", "c3d", "r3d18", "i3d", "s3d"])
def test_other_backbones_train(reader, tmp_path, arch):
    result = pretrain(reader, _setup(arch=arch), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert torch.isfinite(torch.tensor(result["curves"][0]["loss"]))


def test_no_lr_steps_is_a_constant_learning_rate(reader, tmp_path):
    result = pretrain(reader, _setup(epochs=2, lr_steps=[]), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert [row["lr"] for row in result["curves"]] == [0.01, 0.01]


def test_resumed_run_ends_with_the_uninterrupted_weights(reader, tmp_path):
    setup = _setup(epochs=3, lr_steps=[2])
    full, cut = tmp_path / "full", tmp_path / "cut"
    pretrain(reader, setup, CPU, full / "model.pt", full / "resume.pt", workers=0)
    stopped = pretrain(reader, setup, CPU, cut / "model.pt", cut / "resume.pt", workers=2, stop_after_epoch=2)
    assert stopped["stopped"] and load_checkpoint(cut / "resume.pt")["epoch"] == 2
    assert not (cut / "model.pt").exists()
    resumed = pretrain(reader, setup, CPU, cut / "model.pt", cut / "resume.pt", workers=0)
    assert [r["epoch"] for r in resumed["curves"]] == [1, 2, 3]
    a, b = load_checkpoint(full / "model.pt"), load_checkpoint(cut / "model.pt")
    for key, value in a["encoder"].items():
        assert torch.equal(value, b["encoder"][key]), f"{key} differs after resuming"
    # Byte for byte, although the resumed curves were unpickled from the resume state.
    assert (full / "model.pt").read_bytes() == (cut / "model.pt").read_bytes()


def test_resume_state_of_another_configuration_is_ignored(reader, tmp_path):
    pretrain(reader, _setup(epochs=2), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0, stop_after_epoch=1)
    result = pretrain(reader, _setup(epochs=2, lr=0.02), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert [r["epoch"] for r in result["curves"]] == [1, 2]
    assert result["curves"][0]["lr"] == pytest.approx(0.02)


def test_resume_state_of_an_older_checkpoint_format_is_ignored(reader, tmp_path):
    torch.save({"format": 1, "config": {}, "epoch": 1}, tmp_path / "r.pt")
    result = pretrain(reader, _setup(epochs=1), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert [r["epoch"] for r in result["curves"]] == [1]


def test_a_non_finite_loss_stops_training_naming_the_epoch_and_batch(reader, tmp_path):
    """nce_t: 0 used to train 'loss nan' to the end and hand NaN weights to every later stage."""
    with pytest.raises(NonFiniteError, match="epoch 1, batch 1"):
        pretrain(reader, _setup(nce_t=1e-45), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "r.pt").exists()


def test_nce_k_beyond_the_train_videos_fails_before_anything_is_written(reader, tmp_path):
    good = tmp_path / "m.pt"
    good.write_bytes(b"a good model")
    with pytest.raises(ConfigError, match="pretrain.nce_k: 8 negatives but only 7 other train videos"):
        pretrain(reader, _setup(nce_k=8), CPU, good, tmp_path / "r.pt", workers=0)
    assert good.read_bytes() == b"a good model"


def test_resume_state_of_other_inputs_is_ignored(reader, tmp_path):
    """Killed at epoch 1, then the frames were rebuilt (here: other videos): start over, not a hybrid."""
    pretrain(reader, _setup(epochs=2), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0, stop_after_epoch=1)
    other = _other_reader(tmp_path)
    assert other.fingerprint != reader.fingerprint
    result = pretrain(other, _setup(epochs=2), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert [r["epoch"] for r in result["curves"]] == [1, 2]
    assert result["config"]["train_videos"] == 10


def _other_reader(tmp_path):
    folder = make_tiny_shards(tmp_path / "other", n_videos=15)
    return ShardReader(folder / "frames", folder / "motion", [0])


def test_an_unreadable_resume_file_is_named_and_ignored(reader, tmp_path, caplog):
    (tmp_path / "r.pt").write_bytes(b"PK\x03\x04 truncated by a full disk")
    result = pretrain(reader, _setup(epochs=1), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    assert [r["epoch"] for r in result["curves"]] == [1]
    assert any("r.pt" in m and "cannot be read" in m for m in caplog.messages)


@pytest.mark.parametrize(
    "method, intra_neg, neg",
    [
        ("moco", True, "repeat"),
        ("moco", True, "shuffle"),
        ("moco", False, "repeat"),
        ("simclr", True, "repeat"),
        ("simclr", True, "shuffle"),
        ("simclr", False, "repeat"),
        ("cmc_upstream", True, "repeat"),
        ("cmc_upstream", False, "repeat"),
    ],
)
def test_every_method_trains_with_and_without_intra_negatives(reader, tmp_path, method, intra_neg, neg):
    setup = _setup(method=method, intra_neg=intra_neg, neg=neg, nce_k=7)
    result = pretrain(reader, setup, CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)
    row = result["curves"][0]
    assert math.isfinite(row["loss"]) and 0 < row["p_pos_view1"] < 1
    config, encoder = load_encoder(tmp_path / "m.pt")  # the key encoder and queues are not in the model
    dim = 32 if method == "cmc_upstream" else 8  # upstream's banks take the backbone's raw 8 x width output
    assert config["method"] == method and encoder(torch.rand(2, 3, 16, 24, 24)).shape == (2, dim)


@pytest.mark.parametrize("modality", ["u", "rgb"])
def test_moco_with_other_view2_modalities(reader, tmp_path, modality):
    result = pretrain(
        reader, _setup(method="moco", modality=modality, nce_k=8), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0
    )
    assert math.isfinite(result["curves"][0]["loss"])


def test_a_moco_queue_smaller_than_the_batch_is_refused(reader, tmp_path):
    with pytest.raises(ConfigError, match="pretrain.nce_k: a MoCo queue of 2 keys cannot take a batch of 4"):
        pretrain(reader, _setup(method="moco", nce_k=2), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0)


def test_moco_resumes_to_the_uninterrupted_weights(reader, tmp_path):
    """The key encoder and the queues are part of the resume state."""
    setup = _setup(method="moco", nce_k=8, epochs=2)
    full, cut = tmp_path / "full", tmp_path / "cut"
    pretrain(reader, setup, CPU, full / "model.pt", full / "resume.pt", workers=0)
    pretrain(reader, setup, CPU, cut / "model.pt", cut / "resume.pt", workers=0, stop_after_epoch=1)
    pretrain(reader, setup, CPU, cut / "model.pt", cut / "resume.pt", workers=0)
    assert (full / "model.pt").read_bytes() == (cut / "model.pt").read_bytes()


@pytest.mark.parametrize("arch, method", [(a, m) for a in ("i3d", "s3d") for m in ("cmc", "moco", "simclr")])
def test_inception_backbones_with_every_method(reader, tmp_path, arch, method):
    result = pretrain(
        reader, _setup(arch=arch, method=method, nce_k=7), CPU, tmp_path / "m.pt", tmp_path / "r.pt", workers=0
    )
    assert math.isfinite(result["curves"][0]["loss"])


@needs_cuda
@pytest.mark.parametrize("method, use_compile", [("cmc", True), ("moco", False), ("simclr", False)])
def test_an_epoch_on_the_gpu_with_bf16_and_channels_last(reader, tmp_path, method, use_compile):
    """The paper-size GPU path (bench/gpu_check.py) at tiny size: every method trains to a finite
    loss (compiled once only: each compilation costs the GPU check about a minute)."""
    gpu = Runtime(torch.device("cuda"), bf16=True, channels_last=True, compile=use_compile)
    result = pretrain(reader, _setup(method=method), gpu, tmp_path / "model.pt", tmp_path / "resume.pt", workers=2)
    assert math.isfinite(result["curves"][0]["loss"])
    _, encoder = load_encoder(tmp_path / "model.pt")  # saved from the uncompiled module: loads on the CPU
    assert encoder(torch.rand(2, 3, 16, 24, 24)).shape == (2, 8)


@needs_cuda
def test_bf16_channels_last_features_agree_with_float32():
    torch.manual_seed(0)
    encoder = build_encoder({"arch": "r3d", "width": 8, "feat_dim": 16}).eval()
    clips = to_model_input(torch.randint(0, 256, (4, 3, 16, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        reference = encoder(clips)
        gpu = Runtime(torch.device("cuda"), bf16=True, channels_last=True, compile=False)
        fast = gpu.prepare_model(encoder)
        with gpu.autocast():
            ours = fast(gpu.to_device(clips)).float().cpu()
    assert ((reference * ours).sum(1) > 0.99).all()  # unit vectors: cosine similarity
