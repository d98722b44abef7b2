"""lvpc:classify: a model + any subset of its layers -> classified GeoTIFF (styled), optional confidence and class
probability rasters."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
)

from .base import DEVICES, FILLS, MODALITIES, FeedbackProgress, LvpcAlgorithm, number


class LoadQmlStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies the .qml the engine wrote beside the map: QGIS loads processing outputs without their default style."""

    # QGIS does not own post-processors; they must outlive the algorithm object, until the dialog loads the layer.
    alive: dict[str, LoadQmlStyle] = {}

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802 (QGIS API)
                         feedback: QgsProcessingFeedback) -> None:
        if isinstance(layer, QgsRasterLayer) and Path(self.qml).is_file():
            message, ok = layer.loadNamedStyle(self.qml)
            if not ok:
                feedback.reportError(f"could not apply the style {self.qml}: {message}")
            layer.triggerRepaint()


class ClassifyAlgorithm(LvpcAlgorithm):
    NAME = "classify"
    DISPLAY_NAME = "Classify with LVPCnet model"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Classifies a scene with a trained LVPC model from any of its sensors: all of them, or only some "
               "(the learned prompts stand in for the missing ones). Where one layer has nodata, those pixels are "
               "classified from the others. The map is a byte GeoTIFF (0 = no class) with the model's class names "
               "and colours, and a .qml style that QGIS applies when it loads the map.")

    EXTENT = "EXTENT"
    MASK = "MASK"
    BLOCK_SIZE = "BLOCK_SIZE"
    OUTPUT = "OUTPUT"
    CONFIDENCE = "CONFIDENCE"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_model()
        self.add_modalities("Any of the model's layers: all of them for the best map, or only those you have.")
        self.add(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True),
                 "Classify only this rectangle. Empty: the whole first given layer (HS, else LIDAR, else SAR), on the "
                 "model's training pixels.")
        self.add(QgsProcessingParameterFeatureSource(self.MASK, "Mask polygons", [QgsProcessing.TypeVectorPolygon],
                                                     optional=True),
                 "Classify only inside these polygons; pixels outside get 0 (no class).")
        self.add_fill()
        self.add(number(self.BLOCK_SIZE, "Block size (pixels)", "block_size", 256),
                 "The scene is classified in square blocks of this size; smaller uses less memory.", advanced=True)
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, "Classified map"),
                 "The classified GeoTIFF: one byte per pixel, the class code, 0 where nothing was classified.")
        self.add(QgsProcessingParameterRasterDestination(self.CONFIDENCE, "Confidence", optional=True,
                                                         createByDefault=False),
                 "A float GeoTIFF with the probability of the chosen class (0-1) per pixel: low values show where "
                 "the map is unsure.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_PROBABILITIES, "Class probabilities",
                                                         optional=True, createByDefault=False),
                 "A float GeoTIFF with one band per class, named after it, in the model's class order: the "
                 "probability (0-1) of that class per pixel; the bands of a pixel add up to 1.")

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows

        layers = self.modalities(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self.parameterAsOutputLayer(parameters, self.CONFIDENCE, context) or None
        probabilities = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITIES, context) or None
        workflows.classify(
            self.parameterAsFile(parameters, self.MODEL, context), layers, output, confidence=confidence,
            probabilities=probabilities,
            extent=self._extent(parameters, context), mask=self._mask(parameters, context, feedback),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            block_size=self.parameterAsInt(parameters, self.BLOCK_SIZE, context),
            fill=FILLS[self.parameterAsEnum(parameters, self.FILL, context)], progress=progress)
        if context.willLoadLayerOnCompletion(output):
            post = LoadQmlStyle.alive[output] = LoadQmlStyle(str(Path(output).with_suffix(".qml")))
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(post)
        return {self.OUTPUT: output, self.CONFIDENCE: confidence, self.OUTPUT_PROBABILITIES: probabilities}

    def _extent(self, parameters: dict[str, Any], context: QgsProcessingContext
                ) -> tuple[float, float, float, float] | None:
        """EXTENT in the CRS of the reference layer (the first given of HS, LIDAR, SAR), which sets the map's grid."""
        if not self.parameterAsString(parameters, self.EXTENT, context):
            return None
        reference = next(layer for layer in (self.parameterAsRasterLayer(parameters, name, context)
                                             for name, _ in MODALITIES.values()) if layer is not None)
        box = self.parameterAsExtent(parameters, self.EXTENT, context, reference.crs())
        return box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()

    def _mask(self, parameters: dict[str, Any], context: QgsProcessingContext,
              feedback: QgsProcessingFeedback) -> str | None:
        """A one-layer file of the mask polygons: the engine reads the first layer, so all but shapefiles are exported."""
        if self.parameterAsSource(parameters, self.MASK, context) is None:
            return None
        return self.parameterAsCompatibleSourceLayerPath(parameters, self.MASK, context, ["shp"], "gpkg", feedback)
