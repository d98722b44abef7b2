"""Several processes on one job (`torchrun ... -m lvpcnet_core train|prompts|classify`): the process group and the
few collectives LVPC needs, in one place.

Without torchrun (WORLD_SIZE unset or 1) nothing here touches torch.distributed: every helper is then the identity
or a constant, and training and classification are exactly the single-process ones.

What a distributed run shares out (docs/scaling.md): training batches (each rank takes its contiguous, equal shard
of the same seeded global batch; DistributedDataParallel averages the gradients), validation pixels (counts summed,
so every rank reaches the same early-stopping decision), a scene's blocks (block i to rank i % world) and the scenes
of a list. Every rank reads the layers and builds the samples itself; only rank 0 logs and writes the model or map.
"""
from __future__ import annotations

import datetime
import os
import signal
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import LvpcError

T = TypeVar("T")

# a collective waits this long for a rank that hangs (one that dies is seen at once: its sockets close)
TIMEOUT = datetime.timedelta(minutes=5)
COMMANDS = ("train", "prompts", "classify")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    """True inside a process group of two or more processes."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs and writes outputs."""
    return rank() == 0


def where() -> str:
    """' (rank r of n)' for messages of a distributed run, '' otherwise."""
    return f" (rank {rank()} of {world_size()})" if world_size() > 1 else ""


def start(command: str, device: str) -> None:
    """Joins the process group torchrun describes (NCCL when the run uses CUDA, else gloo); no-op without torchrun.

    A SIGTERM (torchrun ends the other ranks when one fails) becomes an LvpcError, so the outputs' `finally` and
    `with` blocks delete this rank's temporary files on the way out."""
    if world_size() <= 1:
        return
    if command not in COMMANDS:
        raise LvpcError(f"'{command}' does not run distributed: run it as `python -m lvpcnet_core {command}` "
                        f"(torchrun runs {', '.join(COMMANDS)})")
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    signal.signal(signal.SIGTERM, _stopped)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)


def _stopped(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # the clean-up that follows must not be interrupted again
    raise LvpcError(f"rank {rank()} of {world_size()} was stopped by torchrun because another process of this run "
                    "failed (see torchrun's report for which); nothing was written")


def failure(exc: BaseException) -> str:
    """The one line a rank prints when a collective fails: another process died or hung."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return (f"lost contact with another process of this run, which failed or was killed ({first}); "
            "nothing was written")


def stop() -> None:
    """Leaves the process group; a SIGTERM that torchrun sends now finds the outputs already settled."""
    if world_size() > 1:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # a peer already gone: there is nothing left to tear down cleanly
            pass


def barrier() -> None:
    if active():
        dist.barrier()


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over the ranks (float64 on the CPU: counts stay exact)."""
    if not active():
        return [float(v) for v in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_objects(value: T) -> list[T]:
    """Every rank's `value` (picklable), in rank order."""
    if not active():
        return [value]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def from_main(value: T) -> T:
    """Rank 0's `value` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mine(items: Sequence[T]) -> list[T]:
    """This rank's share of a list dealt round robin (item i to rank i % world): blocks of a scene, scenes."""
    return list(items[rank()::world_size()]) if active() else list(items)


def share(n: int) -> slice:
    """A contiguous part of n items, sizes differing by at most one (validation pixels)."""
    if not active():
        return slice(0, n)
    w, r = world_size(), rank()
    return slice(r * n // w, (r + 1) * n // w)


def batch_shard(n: int) -> slice | None:
    """This rank's equal contiguous part of a global batch of n; the n % world last samples are left out (only the
    last batch of an epoch can be uneven), and None when the batch has fewer samples than there are ranks.

    Equal parts make DDP's mean of the ranks' gradients the gradient of the whole batch's mean loss."""
    if not active():
        return slice(0, n)
    per = n // world_size()
    return slice(rank() * per, (rank() + 1) * per) if per else None


def check_batch_size(batch_size: int) -> None:
    if active() and batch_size % world_size():
        raise LvpcError(f"--batch-size {batch_size} is the global batch and must divide among the {world_size()} "
                        f"processes: choose a multiple of {world_size()}")


class _AllSum(torch.autograd.Function):
    """Sum over the ranks whose gradient is summed too: every rank's loss depends on every rank's part."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _Gather(torch.autograd.Function):
    """The global batch from the ranks' equal parts; the gradient of this rank's part comes back summed over the
    ranks (each computes the batch-wide loss term), which DDP's mean then turns into that term's gradient."""

    @staticmethod
    def forward(ctx, part: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(part) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, part.contiguous())
        ctx.n = len(part)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[dist.get_rank() * ctx.n:(dist.get_rank() + 1) * ctx.n]


def gather(part: torch.Tensor) -> torch.Tensor:
    """The whole batch of a per-sample tensor (features, labels), for loss terms over the batch."""
    if not active():
        return part
    return _Gather.apply(part)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (torch's SyncBatchNorm is GPU-only;
    this one runs on gloo and NCCL alike). Same parameters and buffers, so the model file does not change;
    in eval mode it is BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not active():
            return super().forward(x)
        c, xf = x.shape[1], x.float()
        local = torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), xf.new_tensor([x.numel() // c])])
        total = _AllSum.apply(local)
        n = total[-1]
        mean = total[:c] / n
        var = total[c:2 * c] / n - mean * mean
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
            self.num_batches_tracked.add_(1)
        scale = self.weight * torch.rsqrt(var + self.eps)
        out = xf * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]
        return out.to(x.dtype)


def sync_batch_norm(module: nn.Module) -> None:
    """Every BatchNorm2d of `module`, in place, computes global-batch statistics from now on (distributed only)."""
    if not active():
        return
    for sub in module.modules():
        if type(sub) is nn.BatchNorm2d:
            sub.__class__ = GlobalBatchNorm2d   # same state, forward that reduces the statistics over the ranks


class _Step(nn.Module):
    """One batch's loss as a module's forward, which is what DistributedDataParallel wraps."""

    def __init__(self, module: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.module, self.loss = module, loss

    def forward(self, *args) -> torch.Tensor:
        return self.loss(*args)


def data_parallel(module: nn.Module, loss: Callable[..., torch.Tensor], device: torch.device
                  ) -> Callable[..., torch.Tensor]:
    """`loss` itself in one process; else `loss` run through DDP over `module`'s learning parameters, so the
    backward pass all-reduces (averages) their gradients."""
    if not active():
        return loss
    from torch.nn.parallel import DistributedDataParallel

    sync_batch_norm(module)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(_Step(module, loss), device_ids=ids)


def part_paths(target: str) -> list[str]:
    """One temporary file per rank beside `target` (rank 0 chooses the names); each rank writes its own, and every
    surviving rank deletes all of them at the end, whatever happened."""
    from .files import temporary_beside

    stem = from_main(temporary_beside(target, ".parts") if is_main() else None)
    return [stem, *(f"{stem}.{r}.npy" for r in range(world_size()))]
