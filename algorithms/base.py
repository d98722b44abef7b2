"""Shared base of the LVPC algorithms: help text beside each parameter, engine errors as QGIS errors, progress.

Subclasses declare their parameters with `add(parameter, help)` and do their work in `process(...)` (not `run`: QGIS owns that name), importing
`lvpcnet_core` inside it: the engine (and torch) load only when an algorithm runs, so the provider lists its
algorithms even where torch is missing, and a run there fails with a message that says what to install. Only
`lvpcnet_core.limits`, which imports nothing heavy, is read when the parameters are built.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QUrl

from ..deps import PIP_NAMES, import_torch, install_hint, missing_modules

# Modality key of the engine -> (parameter name, label in the dialog); the order is the model's modality order.
MODALITIES = {"hs": ("HS", "Hyperspectral image (HS)"), "lidar": ("LIDAR", "LiDAR raster (LIDAR)"),
              "sar": ("SAR", "SAR image (SAR)")}
DEVICES = ["auto", "cpu", "cuda"]
FILLS = ["prompts", "zeros"]
FILL_LABELS = ["Learned prompts (LVPCnet)", "Zero-filled (ablation: no compensation)"]
# The algorithm reference written by scripts/algorithm_docs.py, shipped in the plugin zip: help works offline.
DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "algorithms.html"


def number(name: str, label: str, key: str, default: float) -> QgsProcessingParameterNumber:
    """A numeric parameter whose limits are the engine's range of option `key` (the CLI checks the same)."""
    from lvpcnet_core.limits import LIMITS  # on sys.path once classFactory ran, before any algorithm is built

    limit = LIMITS[key]
    kind = QgsProcessingParameterNumber.Integer if limit.integer else QgsProcessingParameterNumber.Double
    return QgsProcessingParameterNumber(name, label, kind, default, minValue=limit.low, maxValue=limit.high)


class FeedbackProgress:
    """The engine's `Progress` over a QgsProcessingFeedback: messages to the log, percent to the bar, cancel flag back."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_canceled(self) -> bool:
        return self.feedback.isCanceled()


class LvpcAlgorithm(QgsProcessingAlgorithm):
    """Base of every `lvpc:` algorithm; a subclass sets the class attributes and writes `initAlgorithm` and `process`."""

    NAME = ""            # id inside the provider: lvpc:<NAME>
    DISPLAY_NAME = ""
    GROUP_ID = ""
    GROUP = ""
    SUMMARY = ""         # first paragraph of the help panel
    # Top-level modules checked before a run; the default is what the network needs.
    REQUIRES: tuple[str, ...] = ("torch", "torchvision", "open_clip")

    def __init__(self) -> None:
        super().__init__()
        self._help: list[tuple[str, str]] = []

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.DISPLAY_NAME

    def groupId(self) -> str:  # noqa: N802 (QGIS API)
        return self.GROUP_ID

    def group(self) -> str:
        return self.GROUP

    def createInstance(self) -> LvpcAlgorithm:  # noqa: N802 (QGIS API)
        return type(self)()

    MODEL = "MODEL"
    ROIS = "ROIS"
    CLASS_FIELD = "CLASS_FIELD"
    LABELS = "LABELS"
    FILL = "FILL"
    DEVICE = "DEVICE"

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        """Add a parameter with its help, written once: the tooltip and the help panel both show it."""
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self._help.append((parameter.description(), help_text))
        self.addParameter(parameter)

    def add_model(self, optional: bool = False, more_help: str = "") -> None:
        self.add(QgsProcessingParameterFile(self.MODEL, "LVPC model", extension="lvpc", optional=optional),
                 "A model file (.lvpc) written by <i>Train LVPCnet model</i>; it knows its modalities, classes and "
                 f"colours.{more_help}")

    def add_modalities(self, help_text: str) -> None:
        """The HS, LIDAR and SAR raster parameters, all optional; `help_text` says which of them the algorithm needs."""
        for key, (name, label) in MODALITIES.items():
            self.add(QgsProcessingParameterRasterLayer(name, label, optional=True),
                     f"{help_text} Layers on another CRS or pixel size are resampled onto the first given layer "
                     "(with a model: onto the model's training pixels over that layer, so every subset of the "
                     "training scene gives the same grid; the log says how). Must be a file that GDAL reads (GeoTIFF, ENVI, ...), not a web or database layer.")

    def add_labels(self, purpose: str) -> None:
        """ROIS + CLASS_FIELD or LABELS: the training or reference labels (`purpose` words the help)."""
        self.add(QgsProcessingParameterFeatureSource(
            self.ROIS, f"{purpose.capitalize()} polygons or points (ROIs)",
            [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint], optional=True),
            f"Polygons or points with the {purpose} classes; every pixel whose centre is inside a polygon is used. "
            "Give either this layer (with its class field) or a label raster. Selected features only and "
            "temporary layers work.")
        self.add(QgsProcessingParameterField(self.CLASS_FIELD, "Class field", parentLayerParameterName=self.ROIS,
                                             optional=True),
                 "The field of the ROIs that holds the class: a name (text; classes are then numbered 1, 2, ... "
                 "in alphabetical order) or an integer code 1-255.")
        self.add(QgsProcessingParameterRasterLayer(self.LABELS, f"{purpose.capitalize()} label raster", optional=True),
                 f"Instead of ROIs: a raster of integer class codes 1-255, 0 where there is no {purpose} label.")

    def add_fill(self) -> None:
        self.add(QgsProcessingParameterEnum(self.FILL, "Missing modalities", options=FILL_LABELS, defaultValue=0),
                 "How a missing layer (or a nodata pixel of one) is handled: <i>learned prompts</i> rebuild it "
                 "from the layers that are there (the method); <i>zero-filled</i> is the ablation without "
                 "compensation, to compare.", advanced=True)

    def add_device(self) -> None:
        self.add(QgsProcessingParameterEnum(self.DEVICE, "Processor", options=DEVICES, defaultValue=0),
                 "<i>auto</i> uses an NVIDIA GPU (CUDA) when PyTorch sees one, else the CPU.", advanced=True)

    def modalities(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, str]:
        """Engine modality key -> file path of every given HS/LIDAR/SAR layer, in the model's order."""
        paths = {key: self.raster_path(parameters, name, context) for key, (name, _) in MODALITIES.items()}
        return {key: path for key, path in paths.items() if path}

    def raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str | None:
        """The file behind a raster parameter; layers that are not files (WMS, database, memory) are refused."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            return None
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{name}: layer '{layer.name()}' comes from the '{layer.providerType()}' provider, not from a file. "
                "LVPC reads files: save it first (right-click > Export > Save As... GeoTIFF) and choose that file.")
        return layer.source()

    def label_source(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback):
        """ROIS + CLASS_FIELD or LABELS as the engine's LabelSource; ROIs that are no file on disk are exported first."""
        from lvpcnet_core.workflows import LabelSource

        labels = self.raster_path(parameters, self.LABELS, context)
        if self.parameterAsSource(parameters, self.ROIS, context) is None:
            return LabelSource(raster=labels)
        path, layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, self.ROIS, context, ["gpkg", "shp"], "gpkg", feedback)
        return LabelSource(raster=labels, vector=path, layer=layer or None,
                           class_field=self.parameterAsString(parameters, self.CLASS_FIELD, context) or None)

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        items = "".join(f"<dt><b>{label}</b></dt><dd>{text}</dd>" for label, text in self._help)
        return f"<p>{self.SUMMARY}</p><dl>{items}</dl>"

    def helpUrl(self) -> str:  # noqa: N802 (QGIS API)
        """This algorithm's section of the bundled reference page (the dialog's Help button opens it)."""
        url = QUrl.fromLocalFile(str(DOCS_PAGE))
        url.setFragment(self.NAME)
        return url.toString()

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext  # noqa: N802 (QGIS API)
                             ) -> tuple[bool, str]:
        """QGIS's check, with a number out of range named with its range (QGIS says only "Incorrect value")."""
        ok, message = super().checkParameterValues(parameters, context)
        for definition in self.parameterDefinitions() if not ok else []:
            value = parameters.get(definition.name())
            if isinstance(definition, QgsProcessingParameterNumber) and not definition.checkValueIsAcceptable(value,
                                                                                                          context):
                return False, (f"{definition.name()} must be a number from {definition.minimum():g} to "
                               f"{definition.maximum():g}, not {value}: give a value in that range.")
        if ok:
            problem = self.layers_against_model(parameters, context)
            if problem:
                return False, problem
        return ok, message

    def layers_against_model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """The engine's check of the given layers against the model (sensors, prompts, band counts), before the run."""
        if (self.parameterDefinition(self.MODEL) is None or missing_modules(self.REQUIRES)
                or not self.parameterAsFile(parameters, self.MODEL, context)):
            return None
        import_torch()
        from lvpcnet_core.compatibility import ModelLayers
        from lvpcnet_core.errors import LvpcError
        from lvpcnet_core.model_file import read_metadata

        layers = {key: self.parameterAsRasterLayer(parameters, name, context) for key, (name, _) in MODALITIES.items()}
        layers = {key: layer for key, layer in layers.items() if layer is not None}
        # without a FILL choice (lvpc:learnprompts) the prompts are what the run makes, so none are required
        fill = FILLS[self.parameterAsEnum(parameters, self.FILL, context)] if self.parameterDefinition(self.FILL) \
            else "zeros"
        try:
            expects = ModelLayers.of_metadata(read_metadata(self.parameterAsFile(parameters, self.MODEL, context)))
            expects.available(layers, fill)
            expects.check_bands({key: layer.bandCount() for key, layer in layers.items()})
        except LvpcError as exc:
            return str(exc)
        return None

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802 (QGIS API)
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        missing = missing_modules(self.REQUIRES)
        if missing:
            raise QgsProcessingException(install_hint(missing))
        from lvpcnet_core.errors import Cancelled, LvpcError

        try:
            with torch_threads(feedback) if "torch" in self.REQUIRES else contextlib.nullcontext():
                return self.process(parameters, context, feedback, FeedbackProgress(feedback))
        except LvpcError as error:
            raise QgsProcessingException(str(error)) from error
        except Cancelled as error:
            raise QgsProcessingException(f"{self.DISPLAY_NAME}: cancelled by the user.") from error
        except ModuleNotFoundError as error:
            module = (error.name or "").partition(".")[0]
            if module in PIP_NAMES:
                raise QgsProcessingException(install_hint([module])) from error
            raise

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
            progress: FeedbackProgress) -> dict[str, Any]:
        """The algorithm's work: read parameters, call one `lvpcnet_core` function, return the outputs."""
        raise NotImplementedError


@contextlib.contextmanager
def torch_threads(feedback: QgsProcessingFeedback) -> Iterator[None]:
    """torch on all its threads (LVPC_THREADS=N for fewer) where its matrix products run in its own BLAS.

    Where they run in the system OpenBLAS that QGIS loaded (torch imported before the plugin could bind it to its
    own, `deps.import_torch`), one thread, with OpenBLAS held to one for the run: its worker threads spin in
    `sched_yield` between calls, a third of the demo's CPU time in the kernel and a second core taken
    (docs/performance.md). Its count is restored afterwards, since other plugins share it.
    """
    loaded = import_torch()
    import torch

    openblas = None if loaded.own_blas else _openblas()
    threads = max(1, int(os.environ.get("LVPC_THREADS") or (1 if openblas else loaded.default_threads)))
    torch.set_num_threads(threads)
    if openblas:
        get, put = openblas
        before = get()
        put(threads)
        feedback.pushInfo(f"CPU threads for torch: {threads} (its matrix products run in the system OpenBLAS, which "
                          f"was loaded before torch; held to {threads} thread(s) for this run)")
    else:
        feedback.pushInfo(f"CPU threads for torch: {threads} (LVPC_THREADS=N sets another count)")
    try:
        yield
    finally:
        if openblas:
            put(before)


def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """OpenBLAS's get/set thread-count functions when it is loaded into this process, else None."""
    symbols = _process_symbols()
    get = getattr(symbols, "openblas_get_num_threads", None)
    put = getattr(symbols, "openblas_set_num_threads", None)
    return (get, put) if get and put else None


def _process_symbols() -> ctypes.CDLL | None:
    """The symbols already loaded into this process (None where the platform cannot list them, e.g. Windows)."""
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):
        return None

