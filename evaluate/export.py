"""The export stage: the pretrained backbone as safetensors and a ``.pth`` state dict, with a model card.

The backbone's keys are torchvision's ``VideoResNet`` keys (``stem.*``, ``layer1.*`` ...), so
at width 64 the R3D family loads strictly into torchvision once its classifier is removed
(``model.fc = torch.nn.Identity()``): ``r3d18`` into ``torchvision.models.video.r3d_18()``,
``r3d`` and ``r21d_tv`` into ``VideoResNet`` with ``[1, 1, 1, 1]`` layers (see ``torchvision_model``).
The paper's ``r21d`` (VCOP's network) and ``c3d`` have no torchvision twin.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from pipeline.atomic import read_json, write_bytes, write_json
from pipeline.markdown import markdown_table
from train.checkpoint import backbone_state, load_checkpoint

log = logging.getLogger(__name__)

TORCHVISION_WIDTH = 64  # torchvision's video ResNets have a 64-channel stem


def torchvision_model(arch: str) -> nn.Module:
    """The torchvision network a width-64 export of ``arch`` loads into, classifier removed.

    Raises KeyError for backbones torchvision does not have (c3d, r21d, i3d).
    """
    from torchvision.models.video import r3d_18
    from torchvision.models.video.resnet import (
        BasicBlock,
        BasicStem,
        Conv2Plus1D,
        Conv3DSimple,
        R2Plus1dStem,
        VideoResNet,
    )

    builders = {
        "r3d18": lambda: r3d_18(),
        "r3d": lambda: VideoResNet(BasicBlock, [Conv3DSimple] * 4, [1, 1, 1, 1], BasicStem),
        "r21d_tv": lambda: VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [1, 1, 1, 1], R2Plus1dStem),
    }
    model = builders[arch]()
    model.fc = nn.Identity()
    return model


_TORCHVISION_CODE = {
    "r3d18": "from torchvision.models.video import r3d_18\nmodel = r3d_18()",
    "r3d": (
        "from torchvision.models.video.resnet import BasicBlock, BasicStem, Conv3DSimple, VideoResNet\n"
        "model = VideoResNet(BasicBlock, [Conv3DSimple] * 4, [1, 1, 1, 1], BasicStem)"
    ),
    "r21d_tv": (
        "from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet\n"
        "model = VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [1, 1, 1, 1], R2Plus1dStem)"
    ),
}


def model_card(config: dict[str, Any], dataset: str, evaluations: dict[str, dict]) -> str:
    """Markdown card: what the weights are, how to feed them, what they scored.

    ``evaluations``: dataset name -> {"retrieval": ..., "finetune": ...} (report.json's datasets).
    """
    arch, width = config["arch"], config["width"]
    lines = [
        f"# IIC-pretrained {arch} backbone (width {width})",
        "",
        "Self-supervised with the inter-intra contrastive framework (Tao, Wang, Yamasaki, ACM MM 2020).",
        "",
    ]
    rows = [
        ["architecture", f"`{arch}`, stem width {width}, {8 * width}-d pooled output"],
        ["input", f"(B, 3, {config['clip_length']}, {config['crop']}, {config['crop']}) float RGB in [0, 1], "
         "no mean/std normalisation"],
        ["view 2 during pretraining", f"`{config['view2']}` (residual frames are (frame t - frame t-1 + 1) / 2; "
         "flow channels are replicated to 3)"],
        ["contrastive method", f"`{config['method']}`, intra-negatives: {config['neg'] if config['intra_neg'] else 'none'}"],
        ["pretraining data", f"{dataset}, train split, {config['train_videos']} videos, no labels"],
        ["schedule", f"{config['epochs']} epochs, batch {config['batch_size']}, lr {config['lr']}, seed {config['seed']}"],
    ]  # fmt: skip
    for name, results in evaluations.items():
        models = [m for m in ("iic", "random") if m in results["retrieval"]]  # not its intervals, paired
        for model in models:
            for kind, topk in results["retrieval"][model].items():
                if isinstance(topk, dict):  # skip the query and gallery counts
                    ks = "/".join(k.removeprefix("top") for k in topk)
                    values = " / ".join(f"{100 * v:.1f}" for v in topk.values())
                    rows.append([f"`{name}` retrieval top-{ks}, {model} {kind}", values])
        finetune = results["finetune"]
        rows.append(
            [f"`{name}` fine-tuned video top-1",
             f"{100 * finetune['iic']['video_top1']:.1f} (random init: {100 * finetune['random']['video_top1']:.1f})"]
        )  # fmt: skip
    lines += markdown_table(["", ""], rows)
    lines += ["", "## Load", "", "```python", "import torch", "from safetensors.torch import load_file"]
    if arch in _TORCHVISION_CODE and width == TORCHVISION_WIDTH:
        lines += [
            _TORCHVISION_CODE[arch],
            "model.fc = torch.nn.Identity()  # or a new classifier",
            'model.load_state_dict(load_file("model.safetensors"))  # strict',
            "```",
        ]
    else:
        lines += [
            "from train.models import build_backbone  # this project",
            f'model = build_backbone("{arch}", {width})',
            'model.load_state_dict(load_file("model.safetensors"))  # strict',
            "```",
            "",
            f"torchvision has no equivalent of `{arch}` at width {width} (its video ResNets are width 64).",
        ]
    return "\n".join(lines) + "\n"


def pretraining_description(report: dict[str, Any]) -> str:
    """The pretraining datasets as the report recorded them (``pretrained_on``, ``sources``):
    "`demo` (ucf101 layout, artifacts/demo/demo/videos, split 1)", joined by commas."""
    return ", ".join(
        f"`{name}` ({source['format']} layout, {source['root']}, split {source['split']})"
        for name in report["pretrained_on"]
        for source in [report["sources"][name]]
    )


def export_stage(checkpoint_path: Path, report_path: Path, out_dir: Path) -> dict:
    """Write ``model.safetensors``, ``model.pth``, ``config.json`` and the card ``README.md`` into ``out_dir``.

    The card's results and its pretraining datasets come from ``report_path`` (report.json), so
    the stage reads no params: a change to a dataset's settings reaches it through the report.
    """
    checkpoint = load_checkpoint(checkpoint_path)  # first: an old-format checkpoint is the error to report
    report = read_json(report_path)
    config = checkpoint["config"]
    state = backbone_state(checkpoint["encoder"])
    # One metadata key only: safetensors writes its metadata map in a random order, and the
    # file must be byte-stable for DVC. The architecture is in config.json and the card.
    write_bytes(out_dir / "model.safetensors", safetensors_bytes(state, metadata={"format": "pt"}))
    buffer = io.BytesIO()  # a buffer, not a path: the zip's folder name stays "archive" (stable bytes)
    torch.save(state, buffer)
    write_bytes(out_dir / "model.pth", buffer.getvalue())
    write_json(out_dir / "config.json", {k: config[k] for k in sorted(config)})
    card = model_card(config, pretraining_description(report), report["datasets"])
    write_bytes(out_dir / "README.md", card.encode())
    log.info("export: %s backbone, %d tensors -> %s", config["arch"], len(state), out_dir)
    return {"config": config, "tensors": len(state)}
