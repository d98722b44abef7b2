"""Small synthetic models and samples for engine tests (no files, no QGIS)."""
from __future__ import annotations

import numpy as np
import torch

from lvpcnet_core.encoders import ModelConfig
from lvpcnet_core.network import LVPCNet, build_network
from lvpcnet_core.sampling import Samples


def tiny_config(modalities=("hs", "lidar"), bands=None, n_classes=3, **kw) -> ModelConfig:
    bands = bands or {m: b for m, b in zip(modalities, (5, 1, 2))}
    base = dict(text_dim=16, width=16, depth=2, heads=2, patch_size=7, prompt_length=2)
    base.update(kw)
    return ModelConfig(modalities=list(modalities), bands=dict(bands), n_classes=n_classes, **base)


def tiny_model(seed: int = 0, **kw) -> LVPCNet:
    torch.manual_seed(seed)
    model = build_network(tiny_config(**kw))
    with torch.no_grad():
        k, d = model.cfg.n_classes, model.cfg.text_dim
        for key in model.target_keys() if model.cfg.extra.get("language", True) else []:
            getattr(model, f"text_{key}").copy_(torch.nn.functional.normalize(torch.randn(k, d), dim=-1))
    return model


def separable_samples(cfg: ModelConfig, n_per_class: int = 40, seed: int = 0) -> Samples:
    """Windows whose class shows as a level shift in every modality (learnable in a few epochs)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(cfg.n_classes), n_per_class)
    w = cfg.patch_size
    windows = {m: (rng.normal(size=(len(labels), cfg.bands[m], w, w)) * 0.3
                   + labels[:, None, None, None] - 1).astype(np.float32) for m in cfg.modalities}
    n = len(labels)
    return Samples(windows, labels, np.zeros(n, int), np.zeros(n, int), np.ones((n, len(cfg.modalities)), bool))
