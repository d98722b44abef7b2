"""lvpc:evaluate: accuracy of a model or of a class map on reference labels (OA, AA, kappa, per class, confusion,
and for a map the area-adjusted accuracies and class areas of Olofsson et al. 2014) as HTML, JSON and numbers."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DEVICES, FILLS, FeedbackProgress, LvpcAlgorithm


class EvaluateAlgorithm(LvpcAlgorithm):
    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate LVPCnet model"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Measures how well a model, or a class map, agrees with reference pixels that were not used for "
               "training. With MODEL the model classifies the reference pixels with the layers you give: all of "
               "them, or a subset to see how it copes with a missing sensor. With MAP an existing class map (from "
               "<i>Classify with LVPCnet model</i> or any raster of class codes) is evaluated, and the report adds "
               "the good-practice figures of Olofsson et al. (2014): estimated class areas, user's and producer's "
               "accuracy, F1 and overall accuracy, each with its 95 % confidence interval, with the map classes as "
               "strata. Writes an HTML report (accuracies, confusion matrix as a table and a picture, area table) "
               "and a JSON file. Outputs for the model builder: OA, AA and KAPPA of the reference sample, as papers "
               "report them; OA_AREA and OA_CI, the area-weighted overall accuracy and its 95 % half-width (MAP "
               "only; empty with MODEL).")

    MAP = "MAP"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_JSON = "OUTPUT_JSON"
    OA = "OA"
    AA = "AA"
    KAPPA = "KAPPA"
    OA_AREA = "OA_AREA"
    OA_CI = "OA_CI"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_model(optional=True, more_help=" Give either a model (with its layers) or a class map (MAP).")
        self.add_modalities("With MODEL: any of the model's layers; leave one out to measure the accuracy without it.")
        self.add(QgsProcessingParameterRasterLayer(self.MAP, "Class map", optional=True),
                 "Instead of a model: a classified raster whose values are the class codes (0 or nodata = not "
                 "classified), e.g. the map of <i>Classify with LVPCnet model</i>, whose class names ROIs with a "
                 "text class field are matched to. Its pixels per class weigh the reference sample, which gives the "
                 "estimated class areas and area-adjusted accuracies; they assume the reference pixels are a random "
                 "sample within each map class.")
        self.add_labels("reference")
        self.add_fill()
        self.add_device()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Accuracy report", fileFilter="HTML (*.html)"),
                 "An HTML page with the accuracies, the confusion matrix as a table and as a picture, and with MAP "
                 "the area table and the matrix of estimated area proportions.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_JSON, "Accuracy as JSON", fileFilter="JSON (*.json)",
                                                       optional=True, createByDefault=False),
                 "The same numbers as JSON, for scripts and spreadsheets.")
        self.addOutput(QgsProcessingOutputNumber(self.OA, "Overall accuracy of the sample (%)"))
        self.addOutput(QgsProcessingOutputNumber(self.AA, "Average accuracy (%)"))
        self.addOutput(QgsProcessingOutputNumber(self.KAPPA, "Kappa (x100)"))
        self.addOutput(QgsProcessingOutputNumber(self.OA_AREA, "Area-weighted overall accuracy (%, MAP only)"))
        self.addOutput(QgsProcessingOutputNumber(self.OA_CI, "95 % half-width of the area-weighted OA (%, MAP only)"))

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext  # noqa: N802 (QGIS API)
                             ) -> tuple[bool, str]:
        """Exactly one of MODEL and MAP (both are optional parameters for QGIS), before the layers are checked
        against the model."""
        model = self.parameterAsFile(parameters, self.MODEL, context)
        mapped = self.parameterAsRasterLayer(parameters, self.MAP, context)
        if bool(model) == (mapped is not None):
            return False, ("give exactly one of MODEL (the model classifies the reference pixels) or MAP (an "
                           "existing class map), " + ("not both" if model else "not neither"))
        return super().checkParameterValues(parameters, context)

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows

        html = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None
        result = workflows.evaluate(
            self.parameterAsFile(parameters, self.MODEL, context) or None, self.modalities(parameters, context),
            self.label_source(parameters, context, feedback), map_path=self.raster_path(parameters, self.MAP, context),
            fill=FILLS[self.parameterAsEnum(parameters, self.FILL, context)],
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)], json_path=json_path,
            html_path=html, progress=progress)
        oa = (result["area_adjusted"] or {}).get("overall_accuracy", {})
        return {self.OUTPUT_HTML: html, self.OUTPUT_JSON: json_path,
                self.OA: result["oa"], self.AA: result["aa"], self.KAPPA: result["kappa"],
                self.OA_AREA: oa.get("estimate"), self.OA_CI: oa.get("ci95")}
