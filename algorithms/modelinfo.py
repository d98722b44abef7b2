"""lvpc:modelinfo: what a model file holds (classes, sensors, training grid, absence cases and their validation
accuracy, settings, versions, date) as HTML, JSON and numbers, from its metadata alone."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
)

from .base import FeedbackProgress, LvpcAlgorithm


class ModelInfoAlgorithm(LvpcAlgorithm):
    NAME = "modelinfo"
    DISPLAY_NAME = "Model information"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Shows what a trained model holds without loading its weights: its classes and colours, the sensors "
               "and bands it was trained on, the training grid (CRS, pixel size, extent), its absence cases with "
               "their validation accuracy, the training settings, the text encoder, the library versions and the "
               "training date. Writes an HTML page and a JSON file; the counts, the pixel size and the best and "
               "worst absence case's accuracy are also outputs for the model builder. Models trained before LVPC "
               "recorded the grid, the band names, the versions and the date say \"not recorded\" there.")
    # the metadata is read by the model-file module, which imports torch; the network's other packages are not needed
    REQUIRES = ("torch", "safetensors")

    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    NUMBERS = {"N_CLASSES": ("n_classes", "Number of classes"), "N_MODALITIES": ("n_modalities", "Number of sensors"),
               "N_CASES": ("n_cases", "Number of absence cases (sensor sets with prompts)"),
               "PIXEL_SIZE": ("pixel_size", "Training pixel size (CRS units; empty when not recorded)"),
               "VALIDATION_OA": ("validation_oa", "Validation OA with every sensor (%)"),
               "BEST_CASE_OA": ("best_case_oa", "Best absence case's validation OA (%)"),
               "WORST_CASE_OA": ("worst_case_oa", "Worst absence case's validation OA (%)")}
    TEXTS = {"BEST_CASE": ("best_case", "Best absence case (available sensors)"),
             "WORST_CASE": ("worst_case", "Worst absence case (available sensors)")}

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_model()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Model information",
                                                       fileFilter="HTML (*.html)"),
                 "An HTML page with the classes and their colours, sensors and bands, training grid, the validation "
                 "accuracy of every absence case, the settings and the versions.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Model information as JSON",
                                                       fileFilter="JSON (*.json)", optional=True,
                                                       createByDefault=False),
                 "The same information as JSON, for scripts.")
        for name, (_, label) in self.NUMBERS.items():
            self.addOutput(QgsProcessingOutputNumber(name, label))
        for name, (_, label) in self.TEXTS.items():
            self.addOutput(QgsProcessingOutputString(name, label))

    def layers_against_model(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """No layers to check: the model alone is the input."""
        return None

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows
        from lvpcnet_core.report import model_summary

        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None
        info = workflows.model_information(self.parameterAsFile(parameters, self.MODEL, context),
                                           json_path=json_path, html_path=html)
        for line in model_summary(info).splitlines():
            progress.info(line)
        summary = info["summary"]
        return {self.OUTPUT_HTML: html, self.OUTPUT_JSON: json_path,
                **{name: summary[key] for name, (key, _) in {**self.NUMBERS, **self.TEXTS}.items()}}
