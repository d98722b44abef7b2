"""Absence-aware visual prompt compensation (stage 2 of LVPCnet).

For one absence case (available set S, missing modality k) a `Compensator` maps the stacked inputs of S
to k's band count with a 1x1 dimension-matching convolution, then runs them through k's FROZEN specific
encoder with learnable deep prompts. Only the convolution and the prompts are trained, so a case costs a
few thousand parameters and adding one never changes the rest of the model.
"""
from __future__ import annotations

import torch
from torch import nn

from .encoders import ModelConfig, SpecificEncoder


def case_key(available: tuple[str, ...] | list[str], missing: str) -> str:
    """Name of the compensator that rebuilds `missing` from `available` (e.g. 'hs+lidar->sar')."""
    return f"{'+'.join(available)}->{missing}"


def parse_case_key(key: str) -> tuple[tuple[str, ...], str]:
    available, missing = key.split("->")
    return tuple(available.split("+")), missing


class Compensator(nn.Module):
    """Rebuilds s'_k = E_sp^k({conv(X_S); P}) for one (available set, missing modality) case."""

    def __init__(self, available: tuple[str, ...], missing: str, cfg: ModelConfig) -> None:
        super().__init__()
        self.available = tuple(available)
        self.missing = missing
        in_channels = sum(cfg.bands[m] for m in self.available)
        self.match = nn.Conv2d(in_channels, cfg.bands[missing], kernel_size=1)
        self.prompts = nn.Parameter(torch.randn(cfg.depth, cfg.prompt_length, cfg.width) * 0.02)

    def matched(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The available inputs mapped to the missing modality's bands (windows or whole blocks)."""
        return self.match(torch.cat([inputs[m] for m in self.available], dim=1))

    def forward(self, inputs: dict[str, torch.Tensor], encoder: SpecificEncoder) -> torch.Tensor:
        return encoder(self.matched(inputs), self.prompts)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Reconstructor(nn.Module):
    """Ablation vp2: a small CNN per case rebuilds the missing modality's input; no prompts.

    Same interface as `Compensator` (`matched`, `prompts`), about a hundred times more parameters.
    """

    prompts = None

    def __init__(self, available: tuple[str, ...], missing: str, cfg: ModelConfig, hidden: int = 64) -> None:
        super().__init__()
        self.available = tuple(available)
        self.missing = missing
        in_channels = sum(cfg.bands[m] for m in self.available)
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(hidden, cfg.bands[missing], 1))

    def matched(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat([inputs[m] for m in self.available], dim=1))

    def forward(self, inputs: dict[str, torch.Tensor], encoder: SpecificEncoder) -> torch.Tensor:
        return encoder(self.matched(inputs))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
