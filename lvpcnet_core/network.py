"""The whole LVPCnet: normalisation, shared/specific encoders, classifier, text features and compensators.

`slots()` is the one place that decides, for a set of available modalities, which encoder fills each
slot of the classifier's input: the specific encoder when the modality is there, its compensator (learned
prompts) when it is missing, or the specific encoder on zero input when `fill='zeros'` (the vp1 ablation).
`text()` is the one place that decides what each feature is aligned with: the language priors, or learned
class prototypes in the v1 ablation, which then never reads a text feature.
"""
from __future__ import annotations

import itertools
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import Classifier, ModelConfig, SharedEncoder, SpecificEncoder
from .prompts import Compensator, Reconstructor, case_key, parse_case_key


# v1's prototypes have the size of the default text encoder's features (all-MiniLM-L6-v2), so that the ablation
# differs from LVPC in the class targets only, not in the width of the representation
PROTOTYPE_DIM = 384


def build_network(config: ModelConfig | dict, cases: Iterable[str] = ()) -> LVPCNet:
    """The one way a network is made: from its configuration (new settings, or a model file's dict) with the
    compensators of the absence cases `cases` (keys such as 'hs->lidar'); weights as initialised."""
    model = LVPCNet(config if isinstance(config, ModelConfig) else ModelConfig(**config))
    for key in cases:
        available, _ = parse_case_key(key)
        if not model.has_case(available):
            model.add_case(available)
    return model


def absence_cases(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every proper non-empty subset of the modalities, largest first (2 for m=2, 6 for m=3)."""
    return [s for r in range(len(modalities) - 1, 0, -1) for s in itertools.combinations(modalities, r)]


class LVPCNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # ablation vf: no shared encoder; each modality's one encoder is aligned with the class-level priors
        self.shared = SharedEncoder(cfg) if cfg.decoupled else None
        self.specific = nn.ModuleDict({m: SpecificEncoder(cfg.bands[m], cfg) for m in cfg.modalities})
        self.classifier = Classifier(cfg)
        self.compensators = nn.ModuleDict()
        for m in cfg.modalities:
            self.register_buffer(f"mean_{m}", torch.zeros(cfg.bands[m]))
            self.register_buffer(f"std_{m}", torch.ones(cfg.bands[m]))
        if cfg.extra.get("language", True):
            for key in self.target_keys():
                self.register_buffer(f"text_{key}", torch.zeros(cfg.n_classes, cfg.text_dim))
        else:
            # ablation v1: class prototypes learned in stage 1 stand where the text features would be; the model
            # has no text feature at all, so nothing can read one
            self.prototypes = nn.ParameterDict({key: nn.Parameter(torch.randn(cfg.n_classes, cfg.text_dim))
                                                for key in self.target_keys()})

    # -- inputs -----------------------------------------------------------------------------------
    def normalize(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Per-band standardisation with the training scene's statistics; nodata (NaN) becomes the mean (0)."""
        shape = (1, -1, 1, 1)
        x = (x - getattr(self, f"mean_{modality}").view(shape)) / getattr(self, f"std_{modality}").view(shape)
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def band_statistics(self, modality: str) -> tuple:
        """Training-scene mean and standard deviation of every band, as numpy arrays."""
        return (getattr(self, f"mean_{modality}").cpu().numpy(), getattr(self, f"std_{modality}").cpu().numpy())

    def target_keys(self) -> list[str]:
        """Names of the class targets: 'shared' and, with decoupling, one per modality."""
        return ["shared", *(self.cfg.modalities if self.cfg.decoupled else [])]

    def text(self, modality: str | None) -> torch.Tensor:
        """Unit-norm class targets of the contrastive loss: None = shared features, else modality's specific ones.

        The language priors, or learned prototypes (v1); without decoupling (vf) every encoder gets the shared one."""
        key = "shared" if modality is None or not self.cfg.decoupled else modality
        if hasattr(self, "prototypes"):
            return F.normalize(self.prototypes[key], dim=-1)
        return getattr(self, f"text_{key}")

    # -- absence cases ------------------------------------------------------------------------------
    def add_case(self, available: tuple[str, ...]) -> list[str]:
        """Create (fresh) compensators for every modality missing from `available`; returns their keys."""
        keys = []
        for missing in self.cfg.modalities:
            if missing not in available:
                key = case_key(available, missing)
                kind = Reconstructor if self.cfg.extra.get("compensation") == "reconstruction" else Compensator
                self.compensators[key] = kind(available, missing, self.cfg)
                keys.append(key)
        return keys

    def has_case(self, available: tuple[str, ...]) -> bool:
        return all(case_key(available, m) in self.compensators for m in self.cfg.modalities if m not in available)

    def ordered(self, available) -> tuple[str, ...]:
        """The given modality names (any iterable) in the model's order."""
        keep = set(available)
        return tuple(m for m in self.cfg.modalities if m in keep)

    # -- forward ------------------------------------------------------------------------------------
    def features(self, x: dict[str, torch.Tensor], available: tuple[str, ...], fill: str = "prompts"
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Unit-norm shared features of the available modalities and one specific feature per modality slot."""
        available = self.ordered(available)
        if fill == "zeros":
            like = x[available[0]]
            x = {m: x[m] if m in available else like.new_zeros(like.shape[0], self.cfg.bands[m], *like.shape[2:])
                 for m in self.cfg.modalities}
            available = tuple(self.cfg.modalities)
        shared = [F.normalize(f, dim=-1) for f in self.shared({m: x[m] for m in available})] \
            if self.shared is not None else []
        specific = [F.normalize(self.specific[m](x[m]) if compensator is None else compensator(x, self.specific[m]),
                                dim=-1) for m, compensator in self.slots(available)]
        return shared, specific

    def slots(self, available: tuple[str, ...]) -> list[tuple[str, Compensator | None]]:
        """The classifier's specific-feature slots in the model's modality order, each with what fills it for this
        set of available modalities: None (the modality's own encoder) or the compensator standing in for it.

        The one statement of that rule: training and evaluation (`features`) and block prediction
        (`predict.ScenePredictor`) both follow it."""
        available = self.ordered(available)
        return [(m, None if m in available else self.compensator(available, m)) for m in self.cfg.modalities]

    def compensator(self, available: tuple[str, ...], missing: str) -> Compensator:
        available = self.ordered(available)
        key = case_key(available, missing)
        if key not in self.compensators:
            from .compatibility import no_prompts

            raise no_prompts(available, missing)
        return self.compensators[key]

    def forward(self, x: dict[str, torch.Tensor], available: tuple[str, ...] | None = None,
                fill: str = "prompts") -> torch.Tensor:
        """Class logits for normalised windows of the available modalities."""
        shared, specific = self.features(x, available or tuple(x), fill)
        return self.classifier(shared, specific)
