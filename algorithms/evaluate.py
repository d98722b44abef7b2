"""lvpc:evaluate: accuracy of a model on reference labels (OA, AA, kappa, per class, confusion) as HTML, JSON and numbers."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
)

from .base import DEVICES, FILLS, FeedbackProgress, LvpcAlgorithm


class EvaluateAlgorithm(LvpcAlgorithm):
    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate LVPCnet model"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Measures how well a model classifies reference pixels that were not used for training, with the "
               "layers you give: all of them, or a subset to see how the model copes with a missing sensor. "
               "Writes an HTML report (overall and average accuracy, kappa, producer's and user's accuracy per "
               "class, confusion matrix) and a JSON file; OA, AA and KAPPA are also outputs for the model builder.")

    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    OA = "OA"
    AA = "AA"
    KAPPA = "KAPPA"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_model()
        self.add_modalities("Any of the model's layers; leave one out to measure the accuracy without it.")
        self.add_labels("reference")
        self.add_fill()
        self.add_device()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Accuracy report", fileFilter="HTML (*.html)"),
                 "An HTML page with the accuracies, the confusion matrix as a table and as a picture.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Accuracy as JSON", fileFilter="JSON (*.json)",
                                                       optional=True, createByDefault=False),
                 "The same numbers as JSON, for scripts and spreadsheets.")
        self.addOutput(QgsProcessingOutputNumber(self.OA, "Overall accuracy (%)"))
        self.addOutput(QgsProcessingOutputNumber(self.AA, "Average accuracy (%)"))
        self.addOutput(QgsProcessingOutputNumber(self.KAPPA, "Kappa (x100)"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows

        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None
        result = workflows.evaluate(
            self.parameterAsFile(parameters, self.MODEL, context), self.modalities(parameters, context),
            self.label_source(parameters, context, feedback),
            fill=FILLS[self.parameterAsEnum(parameters, self.FILL, context)],
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)], json_path=json_path,
            html_path=html, progress=progress)
        return {self.OUTPUT_HTML: html, self.OUTPUT_JSON: json_path,
                self.OA: result["oa"], self.AA: result["aa"], self.KAPPA: result["kappa"]}
