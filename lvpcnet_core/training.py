"""Stage 1 (LVFD) and stage 2 (VPC) training of LVPCnet.

One epoch loop (`_fit`) serves both stages: it owns the optimiser, cosine schedule, mixed precision on
CUDA, validation after every epoch, keeping the best epoch's weights, early stopping, progress and cancel.
Each stage only says which parameters learn, what the loss of a batch is, and how validation is scored.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed, losses
from .encoders import ModelConfig
from .errors import LvpcError
from .network import LVPCNet
from .progress import Progress, check_cancel
from .sampling import Samples


@dataclass
class TrainSettings:
    """Training choices a user can change; defaults are the measured fast-and-accurate ones (docs/performance.md)."""

    # the architecture's defaults live in ModelConfig, the one place they are set
    patch_size: int = ModelConfig.patch_size
    token_grid: int = ModelConfig.token_grid
    stem_depth: int = ModelConfig.stem_depth
    stem_width: int | None = ModelConfig.stem_width
    band_reduction: int = ModelConfig.band_reduction
    width: int = ModelConfig.width
    depth: int = ModelConfig.depth
    heads: int = ModelConfig.heads
    prompt_length: int = ModelConfig.prompt_length
    epochs_stage1: int = 100
    epochs_stage2: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 5
    label_smoothing: float = 0.1
    patience: int = 25
    validation_fraction: float = 0.15
    max_samples_per_class: int | None = 2000
    # an epoch trains on at most this many labelled pixels, a fresh random draw each epoch: beyond it, training time
    # stops growing with the number of labelled pixels (None: every pixel every epoch); 1,024 cost 1-2 OA points on
    # 2,400 pixels (docs/benchmarks/README.md), so the bound is twice that
    samples_per_epoch: int | None = 2048
    augment: bool = True
    # after validating, train again on every labelled pixel for the whole schedule: on a few hundred pixels in a few
    # polygons the held-out areas are too much to give up, and the validated epoch is too noisy to stop at
    # (docs/benchmarks/README.md, "Development split")
    refit: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    lambdas: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    cases: list[tuple[str, ...]] | None = field(default=None)
    # Ablations of the paper (and one baseline it lacks); the defaults are LVPCnet itself.
    language: bool = True              # False = v1: learnable class prototypes instead of text features
    decoupling: bool = True            # False = vf: one encoder per modality, no shared/specific split
    compensation: str = "prompts"      # "reconstruction" = vp2: a small CNN per case rebuilds the missing input
    modality_dropout: float = 0.0      # > 0: stage 1 zeroes a random modality of that share of samples

    def to_dict(self) -> dict:
        return asdict(self)

    def ablation(self) -> dict:
        """The choices that change the network itself; stored in the model's configuration."""
        return {"language": self.language, "compensation": self.compensation, "decoupling": self.decoupling}


def resolve_device(spec: str, log: Callable[[str], None] | None = None) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is a user error. `log` hears what was chosen."""
    from .errors import LvpcError

    if spec == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif spec.startswith("cuda") and not torch.cuda.is_available():
        raise LvpcError("DEVICE is 'cuda' but no CUDA GPU is available to PyTorch: choose 'auto' or 'cpu'")
    elif spec not in ("cpu",) and not spec.startswith("cuda"):
        raise LvpcError(f"DEVICE must be auto, cpu or cuda, not '{spec}'")
    else:
        device = torch.device(spec)
    if log is not None:
        log(f"device: {device_label(device)}")
    return device


def device_label(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and torch's thread count: what a run's speed depends on."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA GPU {index}, {torch.cuda.get_device_name(index)}"
    threads = torch.get_num_threads()
    return f"CPU, {cpu_model()}, {threads} torch thread{'s' if threads > 1 else ''}"


def cpu_model() -> str:
    """The CPU's model name: figures on an AVX2 EPYC and on an AVX-512 Xeon differ by 2-3x (docs/performance.md)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device):
    """bf16 (or fp16) autocast on CUDA; a no-op context on the CPU, where fp32 is the fast path here.

    LVPC_CUDA_PRECISION=fp32 in the environment turns it off on CUDA too (bench/gpu_check.sh compares the two)."""
    if device.type == "cuda" and os.environ.get("LVPC_CUDA_PRECISION") == "fp32":
        return torch.autocast("cuda", enabled=False)
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


# classification in bf16 on the CPU: "auto" (default) where the CPU multiplies bf16 natively, "1" always, "0" never
BF16_VARIABLE = "LVPC_BF16"


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether the CPU has native bf16 dot products (avx512_bf16 or amx_bf16): only there is bf16 faster than fp32
    (without them a bf16 linear layer was 8x slower, docs/performance.md)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_bf16(device: torch.device, faster: Callable[[], bool]) -> bool:
    """Whether classification on `device` runs under CPU bf16 autocast: LVPC_BF16, else (auto) where the CPU has
    native bf16 AND `faster()` (a timing of the model itself) finds it faster: the flag alone does not tell
    (1.5x on a Zen 4 EPYC with avx512_bf16, 0.8x on a Xeon with avx512_bf16 and no AMX; docs/performance.md)."""
    if device.type != "cpu":
        return False
    choice = os.environ.get(BF16_VARIABLE, "auto").strip().lower()
    if choice not in ("auto", "0", "1"):
        raise LvpcError(f"Environment variable {BF16_VARIABLE}={choice!r}: use 0 (fp32), 1 (bf16) or auto "
                        "(bf16 where the CPU has avx512_bf16 or amx_bf16 and it classifies faster, the default).")
    return choice == "1" or (choice == "auto" and cpu_has_bf16() and faster())


def inference_autocast(device: torch.device, bf16: bool):
    """Autocast of classification: bf16 when `bf16` (`inference_bf16`; the map agrees with fp32 on >= 99.5 % of
    the pixels, docs/performance.md), else as in training."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else autocast(device)


class Batches:
    """Sample tensors held once (pinned on CUDA) and served in seeded random batches.

    With `augment`, every sample gets its own one of the 8 flips/rotations of its window (one for the whole
    batch, as before, gave the network 8 times fewer distinct views per epoch).
    In a distributed run `batch_size` is the global batch: every rank draws the same order and views and keeps its
    own contiguous shard (`distributed.batch_shard`); `part` is then (global batch size, this rank's slice)."""

    def __init__(self, samples: Samples, device: torch.device, batch_size: int, augment: bool, seed: int,
                 per_epoch: int | None = None) -> None:
        distributed.check_batch_size(batch_size)
        pin = device.type == "cuda"
        self.windows = {m: _tensor(w, pin) for m, w in samples.windows.items()}
        self.labels = _tensor(samples.labels, pin)
        self.device, self.batch_size, self.augment = device, batch_size, augment
        self.per_epoch = min(len(self.labels), per_epoch or len(self.labels))
        self.generator = torch.Generator().manual_seed(seed)
        self.part = (0, slice(0, 0))

    def __len__(self) -> int:
        full, last = divmod(self.per_epoch, self.batch_size)
        return full + (distributed.batch_shard(last) is not None if last else 0)

    def __iter__(self):
        order = torch.randperm(len(self.labels), generator=self.generator)[:self.per_epoch]
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            views = torch.randint(0, 8, (len(idx),), generator=self.generator) if self.augment else None
            part = distributed.batch_shard(len(idx))
            if part is None:
                continue
            self.part = (len(idx), part)
            idx, views = idx[part], (views[part] if views is not None else None)
            x = {m: dihedral(w[idx], views).to(self.device, non_blocking=True) for m, w in self.windows.items()}
            yield idx, x, self.labels[idx].to(self.device, non_blocking=True)


def dihedral(windows: torch.Tensor, views: torch.Tensor | None) -> torch.Tensor:
    """Sample i turned by views[i] % 4 quarter turns, mirrored when views[i] >= 4 (None: unchanged).

    One gather per modality: inside QGIS every small torch op costs a thread hand-over, and eight masked groups of
    rotations per batch made a demo epoch several times slower."""
    if views is None:
        return windows
    b, c, w, _ = windows.shape
    index = _dihedral_index(w)[views.cpu()].to(windows.device)[:, None, :].expand(b, c, w * w)
    return windows.flatten(2).gather(2, index).view_as(windows)


@functools.lru_cache(maxsize=8)
def _dihedral_index(size: int) -> torch.Tensor:
    """(8, size * size): for each view, the flat input position that lands at each flat output position."""
    grid = torch.arange(size * size).view(size, size)
    views = [torch.rot90(grid, k % 4, dims=(0, 1)) for k in range(8)]
    return torch.stack([torch.flip(v, dims=(1,)) if k >= 4 else v for k, v in enumerate(views)]).flatten(1)


def _tensor(array: np.ndarray, pin: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.pin_memory() if pin else t


SMOOTHING = 5   # epochs of validation accuracy averaged to choose the best epoch


@dataclass
class FitResult:
    best_epoch: int
    best_accuracy: float | None     # None: trained without validation
    history: list[dict]
    seconds: float


def _fit(module: torch.nn.Module, params: list[torch.nn.Parameter], batches: Batches,
         batch_loss: Callable[[torch.Tensor, dict, torch.Tensor], torch.Tensor], validate: Callable[[], float] | None,
         epochs: int, settings: TrainSettings, progress: Progress, span: tuple[float, float], label: str) -> FitResult:
    """Shared epoch loop; `module`'s state at the best validation epoch is restored at the end.

    "Best" is judged on the mean validation accuracy of the last `SMOOTHING` epochs: on a few hundred validation
    pixels in a few areas, single epochs at a high learning rate spike (Trento, one seed: 99 % at epoch 46 between
    88 % epochs), and picking a spike picks a noisy model.
    Without `validate` (the refit on every labelled pixel) the whole schedule runs and the last epoch is kept.
    Distributed, the step runs through DDP (`distributed.data_parallel`) and the epoch's loss is summed over the
    ranks; validation is already agreed (`_accuracy`), so every rank stops at the same epoch."""
    device, started = batches.device, time.perf_counter()
    step = distributed.data_parallel(module, batch_loss, device)
    # the fused kernel: one pass over all parameters instead of ~10 small ops per tensor (a training step 1.1x faster
    # on the CPU, docs/performance.md); the same update up to rounding
    optimiser = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
    schedule = _schedule(optimiser, epochs * len(batches), min(settings.warmup_epochs, epochs // 4) * len(batches))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    best, best_epoch, best_accuracy, best_state, history = -1.0, 0, None, None, []
    for epoch in range(1, epochs + 1):
        module.train()
        total, count = 0.0, 0
        for idx, x, y in batches:
            check_cancel(progress)
            with autocast(device):
                loss = step(idx, x, y)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        module.eval()
        total, count = distributed.all_sum([total, count])
        progress.set_progress(span[0] + (span[1] - span[0]) * epoch / epochs)
        if validate is None:
            history.append({"epoch": epoch, "loss": total / max(count, 1)})
            best_epoch = epoch
            continue
        accuracy = validate()
        history.append({"epoch": epoch, "loss": total / max(count, 1), "val_oa": accuracy})
        smoothed = float(np.mean([h["val_oa"] for h in history[-SMOOTHING:]]))
        if smoothed >= best:   # on a tie the later epoch: further into the schedule, smoother weights
            best, best_epoch, best_accuracy = smoothed, epoch, accuracy
            best_state = copy.deepcopy(module.state_dict())
        if epoch % 10 == 0 or epoch == epochs:
            progress.info(f"{label} epoch {epoch}/{epochs}: loss {total / max(count, 1):.4f}, "
                          f"validation OA {100 * accuracy:.1f} % (best {100 * best_accuracy:.1f} % at {best_epoch})")
        if settings.patience and epoch - best_epoch >= settings.patience:
            progress.info(f"{label}: no better validation accuracy for {settings.patience} epochs, stopping at {epoch}")
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    progress.set_progress(span[1])
    return FitResult(best_epoch, best_accuracy, history, time.perf_counter() - started)


def _schedule(optimiser: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over `warmup` steps (Adam's first steps on a fresh transformer are the unstable ones),
    then cosine annealing to zero."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


@torch.no_grad()
def predict_logits(model: LVPCNet, windows: dict[str, torch.Tensor], available: tuple[str, ...],
                   fill: str = "prompts", batch_size: int = 1024) -> torch.Tensor:
    """Logits for normalised windows (N, C, w, w) of the available modalities, batched, on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    n = len(next(iter(windows.values())))
    out = []
    for start in range(0, n, batch_size):
        x = {m: w[start:start + batch_size].to(device, non_blocking=True) for m, w in windows.items() if m in available}
        with autocast(device):
            out.append(model(x, available, fill).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.n_classes)


def _validator(model: LVPCNet, val: Samples | None, available: tuple[str, ...]) -> Callable[[], float] | None:
    """Validation OA of a case after each epoch; None (keep the last epoch) without validation samples."""
    return (lambda: _accuracy(model, val, available)) if val is not None and len(val) else None


def _accuracy(model: LVPCNet, samples: Samples, available: tuple[str, ...]) -> float:
    """OA on the samples; distributed, each rank predicts its share and the counts are summed, so all agree."""
    part = distributed.share(len(samples))
    windows = {m: torch.from_numpy(w[part]) for m, w in samples.windows.items()}
    predicted = predict_logits(model, windows, available).argmax(1).numpy()
    correct, n = distributed.all_sum([int((predicted == samples.labels[part]).sum()), len(predicted)])
    return correct / n


def train_stage1(model: LVPCNet, train: Samples, val: Samples | None, settings: TrainSettings, progress: Progress,
                 span: tuple[float, float] = (0.0, 60.0)) -> FitResult:
    """LVFD: shared/specific encoders aligned with the language priors, classifier on the complete representation."""
    device = next(model.parameters()).device
    cfg, (l1, l2, _, _) = model.cfg, settings.lambdas
    batches = Batches(train, device, settings.batch_size, settings.augment, settings.seed, settings.samples_per_epoch)

    full = tuple(cfg.modalities)

    def batch_loss(idx, x, y):
        if settings.modality_dropout > 0 and len(cfg.modalities) > 1:
            x = _drop_modalities(x, settings.modality_dropout, batches.generator, batches.part)
        shared, specific = model.features(x, full)
        con = sum(losses.text_contrastive(c.float(), y, model.text(None), cfg.temperature, distributed.gather)
                  for c in shared)
        con = con + sum(losses.text_contrastive(s.float(), y, model.text(m), cfg.temperature, distributed.gather)
                        for m, s in zip(cfg.modalities, specific))
        logits = model.classifier(shared, specific).float()
        return l1 * con + l2 * losses.classification(logits, y, settings.label_smoothing)

    params = [p for name, p in model.named_parameters() if not name.startswith("compensators.")]
    return _fit(model, params, batches, batch_loss, _validator(model, val, full), settings.epochs_stage1, settings,
                progress, span, "stage 1")


def _drop_modalities(x: dict[str, torch.Tensor], rate: float, generator: torch.Generator,
                     part: tuple[int, slice]) -> dict[str, torch.Tensor]:
    """Zero one random modality in `rate` of the samples (the input a missing layer gets with fill='zeros').

    Drawn for the whole (global) batch of `part[0]`, then cut to this rank's `part[1]`: the same draws as one
    process."""
    names = list(x)
    n, mine = part
    dropped = (torch.rand(n, generator=generator) < rate)[mine]
    which = torch.randint(0, len(names), (n,), generator=generator)[mine]
    out = {}
    for i, m in enumerate(names):
        keep = ~(dropped & (which == i))
        out[m] = x[m] * keep.to(x[m].device, x[m].dtype).view(-1, 1, 1, 1)
    return out


def train_stage2(model: LVPCNet, available: tuple[str, ...], train: Samples, val: Samples | None,
                 settings: TrainSettings, progress: Progress, span: tuple[float, float]) -> FitResult:
    """VPC for one absence case: only the case's prompts and dimension-matching convs learn; the rest is frozen."""
    device = next(model.parameters()).device
    cfg, (_, _, l3, l4) = model.cfg, settings.lambdas
    available = model.ordered(available)
    keys = model.add_case(available)
    model.to(device)
    frozen = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    case_params = [p for k in keys for p in model.compensators[k].parameters()]
    for p in case_params:
        p.requires_grad_(True)
    shared_mean, specific = _frozen_features(model, train, available)
    batches = Batches(train, device, settings.batch_size, augment=False, seed=settings.seed,
                      per_epoch=settings.samples_per_epoch)

    def batch_loss(idx, x, y):
        slots, cross = [], 0.0
        for m, compensator in model.slots(available):
            if compensator is None:
                slots.append(specific[m][idx.to(device)])
            else:
                s = F.normalize(compensator(x, model.specific[m]), dim=-1)
                cross = cross + losses.text_contrastive(s.float(), y, model.text(m), cfg.temperature,
                                                        distributed.gather)
                slots.append(s)
        logits = model.classifier([] if shared_mean is None else [shared_mean[idx.to(device)]], slots).float()
        return l3 * cross + l4 * losses.classification(logits, y, settings.label_smoothing)

    try:
        return _fit(model.compensators, case_params, batches, batch_loss,
                    _validator(model, val, available), settings.epochs_stage2, settings, progress,
                    span, f"prompts {'+'.join(available)}")
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(frozen.get(name, False))


@torch.no_grad()
def _frozen_features(model: LVPCNet, samples: Samples, available: tuple[str, ...], batch_size: int = 1024
                     ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Stage-1 features of the available modalities, computed once: they cannot change in stage 2.

    The mean shared feature is None without a shared encoder (vf)."""
    device = next(model.parameters()).device
    model.eval()
    shared, specific = [], {m: [] for m in available}
    n = len(samples)
    for start in range(0, n, batch_size):
        x = {m: torch.from_numpy(samples.windows[m][start:start + batch_size]).to(device) for m in available}
        with autocast(device):
            if model.shared is not None:
                shared.append(torch.stack([F.normalize(f.float(), dim=-1) for f in model.shared(x)]).mean(0))
            for m in available:
                specific[m].append(F.normalize(model.specific[m](x[m]).float(), dim=-1))
    return (torch.cat(shared) if shared else None), {m: torch.cat(v) for m, v in specific.items()}
