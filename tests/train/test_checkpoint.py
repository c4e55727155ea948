"""The checkpoint format: byte-reproducible, loaded with weights_only."""

from __future__ import annotations

import hashlib

import pytest
import torch

from pipeline.errors import ConfigError, UserError
from train.checkpoint import CheckpointFormatError, build_encoder, load_checkpoint, load_encoder, save_checkpoint

CONFIG = {"arch": "r3d", "width": 4, "feat_dim": 8}


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_identical_weights_give_a_byte_identical_file(tmp_path):
    """torch.save to a path names the zip's folder after the (random) temporary file: DVC then
    saw a new model.pt after every rerun, and no two machines shared its hash."""
    torch.manual_seed(0)
    encoder = build_encoder(CONFIG)
    save_checkpoint(tmp_path / "a" / "model.pt", {"config": CONFIG, "encoder": encoder.state_dict()})
    save_checkpoint(tmp_path / "b" / "other_name.pt", {"config": CONFIG, "encoder": encoder.state_dict()})
    assert _md5(tmp_path / "a" / "model.pt") == _md5(tmp_path / "b" / "other_name.pt")
    config, loaded = load_encoder(tmp_path / "a" / "model.pt")
    assert config == CONFIG
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_training_state_round_trips_unchanged(tmp_path):
    """A resume state holds an optimizer and a scheduler whose milestones are a Counter; a
    rebuilt Counter once turned milestone 2 into (2, 1), so a resumed run never decayed its lr."""
    encoder = build_encoder(CONFIG)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4], 0.2)
    optimizer.step()
    scheduler.step()
    save_checkpoint(tmp_path / "r.pt", {"scheduler": scheduler.state_dict(), "encoder": encoder.state_dict()})
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)
    assert loaded["scheduler"] == scheduler.state_dict()
    assert encoder.state_dict()._metadata == loaded["encoder"]._metadata


def test_an_old_format_model_pt_is_one_line_naming_the_file_in_every_stage_that_reads_it(tmp_path, monkeypatch):
    """features, finetune and export read model.pt: a checkpoint of an older format was a
    traceback from each; now the CLI prints one line naming the file and what to rerun."""
    import shutil

    from click.testing import CliRunner

    from pipeline import paths
    from pipeline.cli import main
    from tests.conftest import REPO

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    paths.pretrain_checkpoint("iic").parent.mkdir(parents=True)
    torch.save({"format": 1, "config": CONFIG, "encoders": {}}, paths.pretrain_checkpoint("iic"))
    with pytest.raises(
        CheckpointFormatError, match=r"^artifacts/pretrain/iic/model.pt: checkpoint format 1.*dvc repro"
    ):
        load_encoder(paths.pretrain_checkpoint("iic"))  # features
    with pytest.raises(UserError):
        load_checkpoint(paths.pretrain_checkpoint("iic"))  # finetune
    result = CliRunner().invoke(main, ["export"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: artifacts/pretrain/iic/model.pt: checkpoint format 1")
    assert "Traceback" not in result.output and result.output.count("\n") == 1


def test_asking_for_cuda_without_one_is_a_config_error_before_any_process_group(monkeypatch):
    from pipeline.schema import RuntimeParams
    from train.distributed import process_group

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    joined = []
    monkeypatch.setattr("train.distributed.init_distributed", lambda use_cuda: joined.append(use_cuda))
    params = RuntimeParams(
        device="cuda", bf16=True, cpu_bf16=False, channels_last=True, cudnn_benchmark=True, compile=False, workers=0
    )
    with (
        pytest.raises(ConfigError, match="^runtime.device: cuda, but torch sees no CUDA device"),
        process_group(params),
    ):
        pass
    assert joined == []


@pytest.mark.parametrize(
    "flags, cpu_bf16, expected",
    [
        ("fpu avx2 avx512f avx512_bf16", True, True),
        ("fpu avx2 amx_tile amx_bf16", True, True),
        ("fpu avx2 avx512f", True, False),  # bf16 would be emulated, slower than float32
        ("fpu avx2 avx512f avx512_bf16", False, False),
    ],
)
def test_bf16_on_the_cpu_only_where_it_is_native_and_asked_for(monkeypatch, flags, cpu_bf16, expected):
    from pipeline import runtime
    from pipeline.schema import RuntimeParams

    assert runtime.cpu_has_native_bf16(f"processor\t: 0\nflags\t\t: {flags}\n") == ("bf16" in flags)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: "bf16" in flags)
    params = RuntimeParams(
        device="cpu", bf16=True, cpu_bf16=cpu_bf16, channels_last=True, cudnn_benchmark=True, compile=False, workers=0
    )
    made = runtime.make_runtime(params)
    assert made.bf16 is expected and made.channels_last is False
    with made.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == (torch.bfloat16 if expected else torch.float32)
