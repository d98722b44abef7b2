"""Whether the given layers fit a model: one check for classify, evaluate, learnprompts and the QGIS dialogs.

The QGIS algorithms run it before the run starts (`checkParameterValues`) from the model file's metadata and the
layers' band counts, so the user hears the same message as the engine would give, without waiting for a load.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import LvpcError
from .prompts import case_key


@dataclass(frozen=True)
class ModelLayers:
    """What a model expects of its layers: the modalities in its order, their band counts, its absence cases, and
    the training layers' descriptions where the model recorded them (file, band names), to name them in messages."""

    modalities: tuple[str, ...]
    bands: Mapping[str, int]
    cases: frozenset[str]
    layers: Mapping[str, dict] = field(default_factory=dict)

    @classmethod
    def of_metadata(cls, meta: dict) -> ModelLayers:
        """From `model_file.read_metadata` (no weights loaded)."""
        config = meta["config"]
        return cls(tuple(config["modalities"]), dict(config["bands"]), frozenset(meta["cases"]),
                   dict(meta.get("layers") or {}))

    @classmethod
    def of_model(cls, model, info) -> ModelLayers:
        """From a loaded model and its `ModelInfo`."""
        return cls(tuple(model.cfg.modalities), dict(model.cfg.bands), frozenset(model.compensators), dict(info.layers))

    def available(self, given: Iterable[str], fill: str = "prompts") -> tuple[str, ...]:
        """The given modalities in the model's order; refused when the model does not know one, or has no prompts."""
        given = list(given)
        unknown = [m for m in given if m not in self.modalities]
        if unknown:
            raise LvpcError(f"the model was trained on {', '.join(self.modalities)}; it has no "
                            f"{', '.join(unknown)} layer: leave {', '.join(u.upper() for u in unknown)} empty")
        if not given:
            raise LvpcError(f"give at least one layer of {', '.join(m.upper() for m in self.modalities)}")
        available = tuple(m for m in self.modalities if m in given)
        if fill == "prompts" and len(available) < len(self.modalities):
            missing = next(m for m in self.modalities if m not in available)
            if case_key(available, missing) not in self.cases:
                raise no_prompts(available, missing)
        return available

    def check_bands(self, bands: Mapping[str, int]) -> None:
        """Each given layer has the band count the model was trained with for its modality."""
        for m, n in bands.items():
            if n != self.bands[m]:
                raise LvpcError(f"layer {m.upper()} has {n} bands but the model was trained with {self.bands[m]} "
                                f"bands for {m.upper()}{self._trained_on(m)}: give the same kind of image as in "
                                "training")

    def _trained_on(self, m: str) -> str:
        """' (file: first band names, ..., last)' of the training layer, '' when the model did not record it."""
        layer = self.layers.get(m)
        if not layer:
            return ""
        names = [n for n in layer.get("band_names", []) if n]
        shown = ", ".join(names if len(names) <= 4 else [*names[:3], "...", names[-1]])
        return f" ({layer['file']}{': ' + shown if shown else ''})"


def no_prompts(available: tuple[str, ...], missing: str) -> LvpcError:
    """The model holds no compensator for this absence case: say how to add one."""
    return LvpcError(f"the model has no prompts for classifying with only {', '.join(available)} "
                     f"(missing {missing}); add them with `lvpc:learnprompts` in QGIS or "
                     f"`python -m lvpcnet_core prompts --available {','.join(available)}` on the model")
