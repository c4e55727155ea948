"""Batch norm over the global batch of every rank, on the CPU (gloo) as on CUDA (NCCL).

Under DDP each rank normalises with its own share of the batch unless batch norm is
synchronised; torch's ``nn.SyncBatchNorm`` runs on accelerators only. ``GlobalBatchNorm``
all-reduces each channel's count, sum and sum of squares through the differentiable
``all_reduce``, so the forward statistics, the running statistics and the gradients are those
of one process holding the whole global batch (to float rounding). On CUDA torch's own
implementation serves.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.nn.functional import all_reduce

from train.distributed import is_distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm{1,2,3}d whose training statistics span every rank; (B,C,...) -> (B,C,...)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected (B,C,...) input, got {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        x = input.float()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))  # summed over the ranks
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0)  # biased, as BN normalises
        if self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1).clamp_min(1), alpha=m)
        shape = [1, channels] + [1] * (input.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def synchronise_batchnorm(model: nn.Module, on_cuda: bool) -> nn.Module:
    """``model`` with every batch norm computing over the global batch (call before DDP wraps it)."""
    if on_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        where = next(module.parameters(), module.running_mean)
        module = converted.to(where.device) if where is not None else converted
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module
