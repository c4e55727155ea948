"""Device, precision and seeding: the one place that knows about CUDA.

Library code never calls ``.cuda()``; it receives a ``Runtime`` and moves tensors with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from pathlib import Path
from typing import cast

import numpy as np
import torch

from pipeline.errors import ConfigError
from pipeline.schema import RuntimeParams

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool  # autocast to bfloat16 (CUDA, or a CPU with native bf16)
    channels_last: bool  # channels_last_3d memory format (CUDA only)
    compile: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return model

    def to_device(self, clips: torch.Tensor) -> torch.Tensor:
        """(B,C,T,H,W) batch onto the device, in the model's memory format."""
        clips = clips.to(self.device, non_blocking=True)
        if self.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return clips

    def maybe_compile(self, model: torch.nn.Module) -> torch.nn.Module:
        return cast(torch.nn.Module, torch.compile(model)) if self.compile else model


def check_device(choice: str, key: str) -> None:
    """ConfigError naming ``key`` when ``cuda`` is asked for on a machine without one.

    Touches no GPU: under torchrun it runs before each rank has picked its own.
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}: cuda, but torch sees no CUDA device here; set it to auto or cpu")


def resolve_device(choice: str, key: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` -> the device: auto is the current GPU when there is one, else the CPU.

    key names the setting in the error when ``cuda`` is asked for on a machine without one.
    """
    check_device(choice, key)
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())  # torchrun sets one GPU per rank
    return torch.device("cpu")


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of a native bf16 dot product


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (``CPU_BF16_FLAGS``); elsewhere bf16 is emulated
    and slower than float32. ``cpuinfo``: the text of /proc/cpuinfo (read when None; absent: False)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def make_runtime(p: RuntimeParams) -> Runtime:
    """CPU where no GPU exists (device: auto); the CUDA speed-ups apply on CUDA only, bf16 also on
    a CPU with native bf16 when ``cpu_bf16`` asks for it."""
    device = resolve_device(p.device, "runtime.device")
    on_cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = p.cudnn_benchmark and on_cuda
    bf16 = p.bf16 if on_cuda else p.cpu_bf16 and cpu_has_native_bf16()
    runtime = Runtime(device, bf16=bf16, channels_last=p.channels_last and on_cuda, compile=p.compile)
    log.info(
        "runtime: %s, bf16=%s, channels_last=%s, compile=%s",
        device,
        runtime.bf16,
        runtime.channels_last,
        runtime.compile,
    )
    return runtime


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation); data randomness has its own generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- the legacy global state is what third-party code draws from
    torch.manual_seed(seed)
