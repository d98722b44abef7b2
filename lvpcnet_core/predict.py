"""Whole-scene classification, block by block, in bounded memory.

Each block is read with a halo of w//2 pixels (NaN outside the scene), normalised, and embedded ONCE per
encoder with a stride-1 convolution; every pixel's window tokens are then gathered from that map instead of
cutting and re-embedding overlapping windows. Pixels are grouped by which modalities are valid at their
centre, and each group goes through the matching absence case. The next block is read in a background
thread while the current one is computed.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LvpcError
from .network import LVPCNet
from .progress import Progress, check_cancel
from .training import BF16_VARIABLE, autocast, cpu_has_bf16, inference_autocast, inference_bf16


# what classifies the blocks on the CPU: "torch" (default) or "onnx", ONNX Runtime on each case's exported graph
RUNTIME_VARIABLE = "LVPC_RUNTIME"


def inference_runtime() -> str:
    """LVPC_RUNTIME's choice: 'torch' unless it says 'onnx'."""
    choice = os.environ.get(RUNTIME_VARIABLE, "torch").strip().lower() or "torch"
    if choice not in ("torch", "onnx"):
        raise LvpcError(f"Environment variable {RUNTIME_VARIABLE}={choice!r}: use torch (the default) or onnx "
                        "(ONNX Runtime, on the CPU)")
    return choice


class BlockSource(Protocol):
    """What prediction needs from a raster stack (raster_io.AlignedStack fits)."""

    bands: dict[str, int]

    def read(self, name: str, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray: ...


@dataclass
class BlockResult:
    xoff: int
    yoff: int
    classes: np.ndarray        # (rows, cols) uint8 class codes, 0 = nodata
    confidence: np.ndarray     # (rows, cols) float32, NaN where nodata
    probabilities: np.ndarray  # (classes, rows, cols) float32 softmax in the model's class order, NaN where nodata
    cases: dict[tuple[str, ...], int]


def blocks(width: int, height: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    for yoff in range(0, height, size):
        for xoff in range(0, width, size):
            yield xoff, yoff, min(size, width - xoff), min(size, height - yoff)


# bf16 classification is taken (LVPC_BF16=auto) only at this speed-up over fp32 or more, measured on the model
BF16_MIN_SPEEDUP = 1.1
_BF16_SPEEDUP: dict[tuple, float] = {}   # network shape and threads -> measured bf16 / fp32 speed


class ScenePredictor:
    """Applies a trained model to normalised blocks; `fill='zeros'` replaces prompts by zero input (vp1).

    `chunk`: pixels per pass of the transformers (on the CPU, windows per pass of the shared encoder)."""

    def __init__(self, model: LVPCNet, class_values: list[int], fill: str = "prompts", chunk: int = 1024,
                 log: Callable[[str], None] | None = None) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.codes = np.asarray(class_values, dtype=np.uint8)
        self.fill, self.chunk = fill, chunk
        self.radius = model.cfg.patch_size // 2
        self.onnx = None
        self.bf16_speedup: float | None = None   # bf16 / fp32 speed when `auto` measured it
        self.bf16 = False
        if inference_runtime() == "onnx":
            if self.device.type != "cpu" or fill != "prompts":
                raise LvpcError(f"{RUNTIME_VARIABLE}=onnx classifies on the CPU with learned prompts: choose the "
                                f"device cpu and the fill 'prompts', or unset {RUNTIME_VARIABLE}")
            from .onnx_export import RuntimeCases

            self.onnx = RuntimeCases(model, log)
        else:
            self.bf16 = inference_bf16(self.device, self._bf16_faster)

    def _bf16_faster(self) -> bool:
        """Times this network on a random 32 x 32 block in fp32 and in bf16 (alternating, best of 2 after a warm-up
        of each) and keeps bf16 only when it is at least 10 % faster: it moves a few pixels per thousand, which
        only a clear gain pays for. Measured once per network shape and thread count in a process."""
        cfg = self.model.cfg
        key = (repr(sorted(cfg.to_dict().items())), torch.get_num_threads())
        if key not in _BF16_SPEEDUP:
            side = 32 + 2 * self.radius
            rng = np.random.default_rng(0)
            raw = {m: rng.normal(size=(cfg.bands[m], side, side)).astype(np.float32) for m in cfg.modalities}
            best, _ = self.time_precisions(raw, rounds=3, warmup=True)
            _BF16_SPEEDUP[key] = best[False] / best[True]
        self.bf16_speedup = _BF16_SPEEDUP[key]
        return self.bf16_speedup >= BF16_MIN_SPEEDUP

    def time_precisions(self, raw: dict[str, np.ndarray], rounds: int, warmup: bool,
                        clock: Callable[[], float] = time.perf_counter
                        ) -> tuple[dict[bool, float], dict[bool, np.ndarray]]:
        """Best time of `predict_probabilities(raw)` in fp32 (False) and bf16 (True), alternating for `rounds`
        (the first untimed with `warmup`), and the last probabilities of each; the precision is restored after."""
        chosen, best, out = self.bf16, {False: math.inf, True: math.inf}, {}
        for round_ in range(rounds):
            for flag in (False, True):
                self.bf16 = flag
                started = clock()
                out[flag] = self.predict_probabilities(raw)[0]
                if round_ or not warmup:
                    best[flag] = min(best[flag], clock() - started)
        self.bf16 = chosen
        return best, out

    def predict_block(self, raw: dict[str, np.ndarray], valid_mask: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict[tuple[str, ...], int]]:
        """Class codes (0 = nodata), the winning class's probability (NaN = nodata) and the pixels per case."""
        probabilities, counts = self.predict_probabilities(raw, valid_mask)
        return (*self.decide(probabilities), counts)

    def decide(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, rows, cols) probabilities -> class codes (0 where NaN) and the winning probability (the confidence)."""
        valid = np.isfinite(probabilities[0])
        classes = np.where(valid, self.codes[probabilities.argmax(0)], 0).astype(np.uint8)
        return classes, probabilities.max(0)

    @torch.no_grad()
    def predict_probabilities(self, raw: dict[str, np.ndarray], valid_mask: np.ndarray | None = None
                              ) -> tuple[np.ndarray, dict[tuple[str, ...], int]]:
        """(K, rows, cols) float32 softmax probabilities in the model's class order, NaN where nothing is classified.

        `raw`: modality -> (C, rows + 2r, cols + 2r) halo block (missing layers simply absent)."""
        model, cfg, r = self.model, self.model.cfg, self.radius
        some = next(iter(raw.values()))
        rows, cols = some.shape[1] - 2 * r, some.shape[2] - 2 * r
        centre = {m: np.isfinite(a[:, r:r + rows, r:r + cols]).all(0) for m, a in raw.items()}
        x = {m: model.normalize(m, torch.from_numpy(a)[None].to(self.device, non_blocking=True)) for m, a in raw.items()}
        if self.fill == "zeros":
            anything = np.logical_or.reduce(list(centre.values()))
            for m in cfg.modalities:
                x.setdefault(m, torch.zeros(1, cfg.bands[m], *some.shape[1:], device=self.device))
                centre[m] = anything
        code = np.zeros((rows, cols), dtype=np.int64)
        for i, m in enumerate(cfg.modalities):
            if m in centre:
                code |= centre[m].astype(np.int64) << i
        if valid_mask is not None:
            code[~valid_mask] = 0
        probabilities = np.full((cfg.n_classes, rows, cols), np.nan, dtype=np.float32)
        maps = TokenMaps(model, x)
        counts = {}
        for value in np.unique(code):
            if value == 0:
                continue
            available = tuple(m for i, m in enumerate(cfg.modalities) if value >> i & 1)
            pr, pc = np.nonzero(code == value)
            counts[available] = len(pr)
            if self.onnx is not None:
                probabilities[:, pr, pc] = self._onnx_case(raw, available, pr, pc)
                continue
            step = self._pixels_per_pass(available)
            for start in range(0, len(pr), step):
                r_t = torch.from_numpy(pr[start:start + step]).to(self.device)
                c_t = torch.from_numpy(pc[start:start + step]).to(self.device)
                with inference_autocast(self.device, self.bf16):
                    logits = self._logits(maps, available, r_t, c_t).float()
                probabilities[:, pr[start:start + step], pc[start:start + step]] = \
                    F.softmax(logits, dim=1).cpu().numpy().T
        return probabilities, counts

    def _pixels_per_pass(self, available: tuple[str, ...]) -> int:
        """Pixels classified in one pass: on the CPU `chunk` bounds the windows of one pass of the shared encoder,
        which takes every available modality's windows at once. At 1,024 pixels of two or three modalities its
        activations (20-30 MB) outgrow the caches; 1,024 windows per pass classified 1.1-1.2x faster
        (docs/performance.md). On CUDA, `chunk` pixels, as measured there."""
        if self.device.type == "cpu" and self.model.shared is not None:
            return max(1, self.chunk // len(available))
        return self.chunk

    def _onnx_case(self, raw: dict[str, np.ndarray], available: tuple[str, ...], rows: np.ndarray, cols: np.ndarray
                   ) -> np.ndarray:
        """(K, n) probabilities of the pixels (rows, cols) by ONNX Runtime, over the box that holds them."""
        r0, c0, size = rows.min(), cols.min(), 2 * self.radius + 1
        bands = np.concatenate([raw[m][:, r0:rows.max() + size, c0:cols.max() + size] for m in available])
        return self.onnx.probabilities(available, bands)[:, rows - r0, cols - c0]

    def _logits(self, maps: "TokenMaps", available: tuple[str, ...], rows: torch.Tensor, cols: torch.Tensor
                ) -> torch.Tensor:
        model = self.model
        shared = [] if model.shared is None else [model.shared.embed[m].gather(maps.shared(m), rows, cols)
                                                  for m in available]
        specific = [model.specific[m].embed.gather(maps.slot(available, m, compensator), rows, cols)
                    for m, compensator in model.slots(available)]
        return logits_of_tokens(model, available, shared, specific)


def logits_of_tokens(model: LVPCNet, available: tuple[str, ...], shared: list[torch.Tensor],
                     specific: list[torch.Tensor]) -> torch.Tensor:
    """Class logits of pixels from their window tokens (B, g*g, width): the shared encoder's of each available
    modality, then one set per classifier slot in `model.slots` order. Block prediction and the ONNX graph
    (onnx_export.py) both classify through it."""
    features = [] if model.shared is None else [F.normalize(f, dim=-1) for f in model.shared.encode_tokens(shared)]
    slots = [F.normalize(model.specific[m].encode_tokens(tokens, getattr(compensator, "prompts", None)), dim=-1)
             for (m, compensator), tokens in zip(model.slots(available), specific)]
    return model.classifier(features, slots)


class TokenMaps:
    """Stride-1 token maps of one block, computed on first use (a compensated map only if some pixel needs it)."""

    def __init__(self, model: LVPCNet, x: dict[str, torch.Tensor]) -> None:
        self.model, self.x, self.cache = model, x, {}

    def _get(self, key, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self.cache:
            with autocast(next(self.model.parameters()).device):
                self.cache[key] = make()
        return self.cache[key]

    def shared(self, m: str) -> torch.Tensor:
        return self._get(("shared", m), lambda: self.model.shared.embed[m].dense(self.x[m]))

    def specific(self, m: str) -> torch.Tensor:
        return self._get(("specific", m), lambda: self.model.specific[m].embed.dense(self.x[m]))

    def compensated(self, available: tuple[str, ...], m: str) -> torch.Tensor:
        compensator = self.model.compensator(available, m)
        return self._get(("comp", available, m),
                         lambda: self.model.specific[m].embed.dense(compensator.matched(self.x)))

    def slot(self, available: tuple[str, ...], m: str, compensator) -> torch.Tensor:
        """The map of modality m's classifier slot (`LVPCNet.slots`): its own, or the compensated one."""
        return self.specific(m) if compensator is None else self.compensated(available, m)


def classify_scene(predictor: ScenePredictor, source: BlockSource, width: int, height: int,
                   write: Callable[[BlockResult], None], progress: Progress, block_size: int = 256,
                   mask: Callable[[int, int, int, int], np.ndarray] | None = None,
                   todo: list[tuple[int, int, int, int]] | None = None) -> dict[tuple[str, ...], int]:
    """Classifies the whole grid (or the blocks `todo`, a distributed rank's share); reading of block n+1 overlaps
    the computation of block n."""
    r = predictor.radius
    if predictor.onnx is not None:
        progress.info(f"CPU runtime: ONNX Runtime, fp32 ({RUNTIME_VARIABLE}=onnx; each absence case is exported "
                      "when its first pixel comes)")
    elif predictor.device.type == "cpu":
        measured = "" if predictor.bf16_speedup is None else f", bf16 measured {predictor.bf16_speedup:.2f}x fp32's speed"
        progress.info(f"CPU arithmetic: {'bf16 autocast' if predictor.bf16 else 'fp32'} "
                      f"(native bf16: {'yes' if cpu_has_bf16() else 'no'}{measured}; {BF16_VARIABLE}=0, 1 or auto "
                      "chooses)")
    modalities = [m for m in predictor.model.cfg.modalities if m in source.bands]
    todo = list(blocks(width, height, block_size)) if todo is None else todo

    def read(block):
        xoff, yoff, xs, ys = block
        raw = {m: source.read(m, xoff - r, yoff - r, xs + 2 * r, ys + 2 * r) for m in modalities}
        return raw, (mask(xoff, yoff, xs, ys) if mask else None)

    totals: dict[tuple[str, ...], int] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, todo[0]) if todo else None
        for i, block in enumerate(todo):
            check_cancel(progress)
            raw, valid = pending.result()
            pending = pool.submit(read, todo[i + 1]) if i + 1 < len(todo) else None
            probabilities, counts = predictor.predict_probabilities(raw, valid)
            write(BlockResult(block[0], block[1], *predictor.decide(probabilities), probabilities, counts))
            for case, n in counts.items():
                totals[case] = totals.get(case, 0) + n
            progress.set_progress(100.0 * (i + 1) / len(todo))
    return totals
