"""lvpc:describeclasses: write the editable class-description table (the language priors) for a set of classes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QVariant

from .base import FeedbackProgress, LvpcAlgorithm

MODALITY_KEYS = ["hs", "lidar", "sar"]
MODALITY_LABELS = ["Hyperspectral (hs)", "LiDAR (lidar)", "SAR (sar)"]


class DescribeClassesAlgorithm(LvpcAlgorithm):
    NAME = "describeclasses"
    DISPLAY_NAME = "Describe classes (language priors)"
    GROUP_ID = "language"
    GROUP = "Language priors"
    SUMMARY = ("Writes a table of text descriptions for each class: one shared description and one per modality. "
               "Training aligns the image features with these texts. Edit the file to describe your classes in your "
               "own words, then give it to the training algorithm.")
    REQUIRES = ()  # text only: works without torch

    CLASSES = "CLASSES"
    VECTOR = "VECTOR"
    CLASS_FIELD = "CLASS_FIELD"
    MODALITIES = "MODALITIES"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterString(self.CLASSES, "Class names", optional=True),
                 "Class names separated by commas, e.g. <i>forest, water, built-up</i>. "
                 "Leave empty to take the classes from a layer's field instead.")
        self.add(QgsProcessingParameterFeatureSource(self.VECTOR, "Layer with the classes",
                                                     [QgsProcessing.TypeVector], optional=True),
                 "A layer (e.g. your training polygons) whose class field holds the class names or codes.")
        self.add(QgsProcessingParameterField(self.CLASS_FIELD, "Class field", parentLayerParameterName=self.VECTOR,
                                             optional=True),
                 "The field of that layer whose distinct values are the classes.")
        self.add(QgsProcessingParameterEnum(self.MODALITIES, "Modalities", options=MODALITY_LABELS,
                                            allowMultiple=True, defaultValue=[0, 1]),
                 "The sensors you will train with; each gets its own column of descriptions.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT, "Class descriptions",
                                                       fileFilter="JSON files (*.json);;CSV files (*.csv)"),
                 "Where to write the table: .json, or .csv to edit it in a spreadsheet.")

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
            progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows
        from lvpcnet_core.errors import LvpcError

        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if Path(output).suffix.lower() not in (".json", ".csv"):
            raise LvpcError(f"OUTPUT '{output}' must end in .json or .csv.")
        classes = self._classes(parameters, context)
        if not classes:
            raise LvpcError("No classes: give names in CLASSES (e.g. 'forest, water') "
                            "or a layer in VECTOR and its class field in CLASS_FIELD.")
        modalities = [MODALITY_KEYS[i] for i in self.parameterAsEnums(parameters, self.MODALITIES, context)]
        vector = self.parameterAsVectorLayer(parameters, self.VECTOR, context)
        workflows.describe(classes, modalities, output,
                           inputs={self.VECTOR: vector.source().split("|")[0] if vector is not None else None})
        progress.info(f"Described {len(classes)} classes ({', '.join(classes)}) for {', '.join(modalities)}: {output}")
        return {self.OUTPUT: output}

    def _classes(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        """Class names from CLASSES, else the sorted distinct non-empty values of VECTOR's CLASS_FIELD."""
        from lvpcnet_core.errors import LvpcError

        text = self.parameterAsString(parameters, self.CLASSES, context)
        source = self.parameterAsSource(parameters, self.VECTOR, context)
        if text.strip():
            if source is not None:
                raise LvpcError("Give the classes either in CLASSES or through VECTOR and CLASS_FIELD, not both.")
            return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        if source is None:
            return []
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        index = source.fields().lookupField(field)
        if index < 0:
            raise LvpcError(f"CLASS_FIELD '{field}' is not a field of the VECTOR layer; "
                            f"its fields are: {', '.join(source.fields().names())}.")
        values = [v for v in source.uniqueValues(index) if v is not None and not isinstance(v, QVariant)]
        return [str(v) for v in sorted(values) if str(v).strip()]
