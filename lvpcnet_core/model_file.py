"""The `.lvpc` model file: one safetensors file, tensors plus JSON metadata.

safetensors holds raw tensors and a string header only, so loading a model can never run code from the
file (no pickle). The metadata carries the configuration, the classes, the language descriptions the
text features came from, the absence cases and the training report.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .encoders import ModelConfig
from .files import atomic_output
from .network import LVPCNet
from .progress import LvpcError
from .prompts import parse_case_key

FORMAT = "lvpc-model"
VERSION = 1


@dataclass
class ModelInfo:
    """What a model knows beyond its weights."""

    class_values: list[int]
    class_names: list[str]
    colors: list[tuple[int, int, int]]
    descriptions: dict
    text_encoder: str
    report: dict = field(default_factory=dict)


def save_model(path: str | os.PathLike, model: LVPCNet, info: ModelInfo) -> None:
    """Writes atomically: a temporary file beside the target, renamed over it only when complete."""
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT, "format_version": VERSION,
        "config": model.cfg.to_dict(),
        "cases": list(model.compensators.keys()),
        "class_values": info.class_values, "class_names": info.class_names,
        "colors": [list(c) for c in info.colors], "descriptions": info.descriptions,
        "text_encoder": info.text_encoder, "report": info.report,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path, "OUTPUT_MODEL") as tmp:
        save_file(tensors, tmp, metadata={"lvpc": json.dumps(meta)})


def read_metadata(path: str | os.PathLike) -> dict:
    """The model's JSON metadata, checked for format and version; never loads tensors."""
    from safetensors import safe_open

    name = Path(path).name
    if not Path(path).is_file():
        raise LvpcError(f"MODEL: '{path}' does not exist; give a .lvpc file made by lvpc:train")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("lvpc")
    except Exception as exc:  # safetensors raises several types for damaged headers
        raise LvpcError(f"MODEL: '{name}' is not a readable LVPC model file ({exc.__class__.__name__}: {exc}); "
                        "it may be truncated or another kind of file: train a new model with lvpc:train") from None
    if not raw:
        raise LvpcError(f"MODEL: '{name}' is a safetensors file but not an LVPC model; give a .lvpc file made by lvpc:train")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise LvpcError(f"MODEL: '{name}' is not an LVPC model file")
    if int(meta.get("format_version", 0)) > VERSION:
        raise LvpcError(f"MODEL: '{name}' was written by a newer LVPC (model format {meta['format_version']}, this "
                        f"version reads up to {VERSION}): update the LVPC plugin")
    return meta


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[LVPCNet, ModelInfo]:
    from safetensors.torch import load_file

    meta = read_metadata(path)
    # models written before the convolutional stem existed have none
    model = LVPCNet(ModelConfig(**{"stem_depth": 0, **meta["config"]}))
    for key in meta["cases"]:
        available, _ = parse_case_key(key)
        if not model.has_case(available):
            model.add_case(available)
    try:
        tensors = load_file(str(path))
        model.load_state_dict(tensors, strict=True)
    except Exception as exc:
        raise LvpcError(f"MODEL: '{Path(path).name}' is damaged ({exc.__class__.__name__}); train it again") from None
    info = ModelInfo(meta["class_values"], meta["class_names"], [tuple(c) for c in meta["colors"]],
                     meta["descriptions"], meta["text_encoder"], meta.get("report", {}))
    return model.to(device).eval(), info
