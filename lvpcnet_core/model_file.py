"""The `.lvpc` model file: one safetensors file, tensors plus JSON metadata.

safetensors holds raw tensors and a string header only, so loading a model can never run code from the
file (no pickle). The metadata carries the configuration, the classes, the language descriptions the
text features came from, the absence cases and the training report; models trained since issue 14 also keep the
training grid, their layers' bands, the library versions and the training date (optional keys: older files load).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata as packages
from pathlib import Path

import torch

from .encoders import ModelConfig
from .errors import LvpcError
from .files import atomic_output
from .limits import Limit, modality_name_problem
from .network import LVPCNet, build_network
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
    grid: dict = field(default_factory=dict)       # the training grid, `raster_io.Grid.to_dict`; {} = not recorded
    layers: dict = field(default_factory=dict)     # modality -> `raster_io.AlignedStack.describe` of its layer
    versions: dict = field(default_factory=dict)   # `library_versions()` of the training run
    created: str = ""                              # training date, UTC ISO 8601
    # What the training labels called each class (a ROI field's values): evaluate and learnprompts match the same
    # ROI layer by them, while `class_names` may be a style's display labels. None in older models: the names.
    class_keys: list[str] | None = None

    def keys(self) -> list[str]:
        return self.class_keys if self.class_keys is not None else self.class_names


def library_versions() -> dict[str, str | None]:
    """The versions a trained model depends on, to explain later why two models or runs differ (None: not found)."""
    import numpy
    from osgeo import gdal

    def installed(name: str) -> str | None:
        try:
            return packages.version(name)
        except packages.PackageNotFoundError:
            return None

    return {"lvpc_plugin": plugin_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "gdal": gdal.__version__, "open_clip": installed("open_clip_torch"),
            "safetensors": installed("safetensors")}


def plugin_version() -> str | None:
    """The `version=` of the plugin's metadata.txt, when the engine runs from the plugin folder (None elsewhere)."""
    from configparser import ConfigParser, Error

    parser = ConfigParser(interpolation=None)
    try:
        parser.read(Path(__file__).resolve().parent.parent / "metadata.txt", encoding="utf-8")
        return parser.get("general", "version", fallback=None)
    except (Error, OSError, UnicodeDecodeError):
        return None


def utc_now() -> str:
    """The moment as a model file keeps its training date: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
        "grid": info.grid, "layers": info.layers, "versions": info.versions, "created": info.created,
        **({"class_keys": info.class_keys} if info.class_keys is not None else {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path, "OUTPUT_MODEL") as tmp:
        save_file(tensors, tmp, metadata={"lvpc": json.dumps(meta)})


def read_metadata(path: str | os.PathLike) -> dict:
    """The model's JSON metadata, every key checked (`_metadata_problem`); never loads tensors."""
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
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise _damaged(name, f"its metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LvpcError(f"MODEL: '{name}' is not an LVPC model file")
    version = meta.get("format_version")
    if type(version) is int and version > VERSION:
        raise LvpcError(f"MODEL: '{name}' was written by a newer LVPC (model format {version}, this "
                        f"version reads up to {VERSION}): update the LVPC plugin")
    problem = _metadata_problem(meta)
    if problem:
        raise _damaged(name, problem)
    return meta


def _damaged(name: str, problem: str) -> LvpcError:
    return LvpcError(f"MODEL: '{name}' is damaged: {problem}. It cannot be used: train it again with lvpc:train")


# Ranges of the configuration's numbers: wide enough for any model LVPC trains, narrow enough that a damaged file
# cannot make the loader build a network of billions of weights before the tensors are compared.
_CONFIG_LIMITS = {
    "n_classes": Limit(2, 255), "text_dim": Limit(1, 65536), "patch_size": Limit(1, 999, odd=True),
    "token_grid": Limit(1, 999), "stem_depth": Limit(0, 99), "stem_width": Limit(1, 65536),
    "band_reduction": Limit(0, 100000), "width": Limit(1, 65536), "depth": Limit(1, 1000),
    "heads": Limit(1, 1024), "mlp_ratio": Limit(1e-3, 64, integer=False), "prompt_length": Limit(1, 10000),
    "temperature": Limit(1e-6, 100, integer=False),
}
_BANDS = Limit(1, 100000)
_BYTE = Limit(0, 255)
_SIZE = Limit(1, 10**9)
# keys a model may lack: what training measured, and what models trained before issue 14 did not record
_OPTIONAL = {"report": dict, "grid": dict, "layers": dict, "versions": dict, "created": str, "class_keys": list}
# keys a model may lack: models written before the convolutional stem existed have none (it then has depth 0), and
# models before issue 15 no stem width (None: the stem is as wide as the transformer) and no band reduction
_CONFIG_OPTIONAL = {"stem_depth": 0, "stem_width": None, "band_reduction": 0}


def _metadata_problem(meta: dict) -> str | None:
    """What is wrong with a model's metadata (None: nothing): every key present, of its type and in its range."""
    top = {"format_version": int, "config": dict, "cases": list, "class_values": list, "class_names": list,
           "colors": list, "descriptions": dict, "text_encoder": str, **_OPTIONAL}
    for key, kind in top.items():
        if key not in meta:
            if key in _OPTIONAL:
                continue
            return f"its metadata has no '{key}'"
        if type(meta[key]) is not kind:
            return f"'{key}' is a {type(meta[key]).__name__}, not a {kind.__name__}"
    unknown = sorted(set(meta) - set(top) - {"format"})
    if unknown:
        return f"its metadata has unknown keys {unknown}"
    if meta["format_version"] < 1:
        return f"'format_version' is {meta['format_version']}, not a format version (1 to {VERSION})"
    return (_config_problem(meta["config"]) or _classes_problem(meta) or _cases_problem(meta)
            or _provenance_problem(meta))


def _config_problem(config: dict) -> str | None:
    names = {f.name for f in fields(ModelConfig)}
    missing = sorted(names - set(config) - set(_CONFIG_OPTIONAL))
    unknown = sorted(set(config) - names)
    if missing:
        return f"its configuration has no {missing}"
    if unknown:
        return f"its configuration has unknown keys {unknown}"
    modalities, bands = config["modalities"], config["bands"]
    if (type(modalities) is not list or not modalities or len(set(map(str, modalities))) != len(modalities)
            or any(type(m) is not str or modality_name_problem(m) for m in modalities)):
        return f"the configuration's modalities {modalities!r} are not a list of distinct modality names"
    if type(bands) is not dict or set(bands) != set(modalities) or any(_BANDS.problem(b) for b in bands.values()):
        return f"the configuration's bands {bands!r} do not give a band count (1 to 100000) to each modality"
    if type(config["extra"]) is not dict:
        return f"the configuration's 'extra' is a {type(config['extra']).__name__}, not a dict"
    for key, limit in _CONFIG_LIMITS.items():
        value = config.get(key, _CONFIG_OPTIONAL.get(key))
        problem = None if value is None and key in _CONFIG_OPTIONAL else limit.problem(value)
        if problem:
            return f"the configuration's '{key}' {problem}"
    return None


def _classes_problem(meta: dict) -> str | None:
    n, values = meta["config"]["n_classes"], meta["class_values"]
    lists = {"class_values": values, "class_names": meta["class_names"], "colors": meta["colors"],
             "class_keys": meta.get("class_keys", meta["class_names"])}
    for key, items in lists.items():
        if len(items) != n:
            return f"'{key}' holds {len(items)} entries for {n} classes"
    if any(_BYTE.problem(v) or v == 0 for v in values) or len(set(values)) != n:
        return f"'class_values' {values} are not distinct class codes 1 to 255"
    for key in ("class_names", "class_keys"):
        if any(type(c) is not str for c in lists[key]):
            return f"'{key}' are not all text"
    if any(type(c) is not list or len(c) != 3 or any(_BYTE.problem(v) for v in c) for c in meta["colors"]):
        return "'colors' are not all [red, green, blue] triples of 0 to 255"
    return None


def _provenance_problem(meta: dict) -> str | None:
    """The training grid and layers, when recorded, are what `raster_io` wrote: another run and the model information
    rely on them."""
    grid = meta.get("grid") or {}
    if grid and not (all(type(grid.get(k)) is str for k in ("crs", "crs_wkt", "units"))
                     and _numbers(grid.get("geotransform"), 6) and _numbers(grid.get("pixel_size"), 2)
                     and not _SIZE.problem(grid.get("width")) and not _SIZE.problem(grid.get("height"))):
        return ("'grid' is not a training grid (crs, crs_wkt, units, a geotransform of 6 numbers, a pixel size of 2, "
                "width and height)")
    layers, bands = meta.get("layers") or {}, meta["config"]["bands"]
    for m, layer in layers.items():
        if not (m in bands and type(layer) is dict and type(layer.get("file")) is str and layer.get("bands") == bands[m]
                and type(layer.get("band_names")) is list and len(layer["band_names"]) == bands[m]
                and all(type(n) is str for n in layer["band_names"])
                and ("wavelengths" not in layer or (_numbers(layer["wavelengths"], bands[m])
                                                    and type(layer.get("wavelength_units")) is str))):
            return (f"'layers' does not describe the {m} layer of the model (its file, {bands.get(m)} bands and their "
                    "names)")
    return None


def _numbers(values: object, n: int) -> bool:
    return type(values) is list and len(values) == n and all(type(v) in (int, float) for v in values)


def _cases_problem(meta: dict) -> str | None:
    modalities = meta["config"]["modalities"]
    if len(set(map(str, meta["cases"]))) != len(meta["cases"]):
        return f"'cases' {meta['cases']} names a case twice"
    for key in meta["cases"]:
        try:
            available, missing = parse_case_key(key)
        except (AttributeError, ValueError):
            available, missing = (), ""
        ordered = tuple(m for m in modalities if m in available)
        if ordered != available or missing not in modalities or missing in available:
            return f"'cases' holds {key!r}, not an absence case of the modalities {modalities} (e.g. 'hs->lidar')"
    return None


def _network(meta: dict) -> LVPCNet:
    """The network the metadata describes, its absence cases included; weights as initialised."""
    return build_network({**_CONFIG_OPTIONAL, **meta["config"]}, meta["cases"])


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[LVPCNet, ModelInfo]:
    """The network and what it knows; the metadata must describe exactly the tensors in the file.

    The description is first built without memory (on torch's meta device) and compared with the tensors' names and
    shapes in the header, so a damaged configuration is refused before any weight is allocated.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    meta = read_metadata(path)
    name = Path(path).name
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in _network(meta).state_dict().items()}
        with safe_open(str(path), framework="pt") as handle:
            stored = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except Exception as exc:  # the network's own checks of its configuration, safetensors' of the header
        raise _damaged(name, f"its configuration does not make a network ({exc.__class__.__name__}: {exc})") from None
    if expected != stored:
        wrong = sorted(set(expected) ^ set(stored)) or sorted(k for k in expected if expected[k] != stored[k])
        raise _damaged(name, f"its configuration and its tensors disagree (e.g. on {wrong[0]})")
    try:
        model = _network(meta)
        model.load_state_dict(load_file(str(path)), strict=True)
    except Exception as exc:
        raise _damaged(name, f"its tensors cannot be read ({exc.__class__.__name__})") from None
    info = ModelInfo(meta["class_values"], meta["class_names"], [tuple(c) for c in meta["colors"]],
                     meta["descriptions"], meta["text_encoder"], meta.get("report", {}), meta.get("grid", {}),
                     meta.get("layers", {}), meta.get("versions", {}), meta.get("created", ""), meta.get("class_keys"))
    return model.to(device).eval(), info
