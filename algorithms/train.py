"""lvpc:train: layers + training labels -> an LVPCnet model file (.lvpc), and an optional HTML training report."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
    QgsVectorLayer,
)

from .base import DEVICES, FeedbackProgress, LvpcAlgorithm, number

# Defaults of lvpcnet_core.training.TrainSettings (a test keeps them equal; importing it here would load torch).
DEFAULTS = {"patch_size": 11, "epochs_stage1": 100, "epochs_stage2": 40, "batch_size": 128, "learning_rate": 1e-3,
            "seed": 0, "validation_fraction": 0.15, "refit": True}


class TrainAlgorithm(LvpcAlgorithm):
    NAME = "train"
    DISPLAY_NAME = "Train LVPCnet model"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Trains a land-cover classifier on two or three co-registered sensors (hyperspectral, LiDAR, SAR) that "
               "keeps working when one of them is missing later. Stage 1 learns features guided by text descriptions "
               "of the classes; stage 2 learns small 'visual prompts' that stand in for each missing sensor. "
               "Class names and colours come from the ROI layer's categorized style when it has one (the class "
               "field's values stay the keys, so the same layer serves Evaluate and Learn prompts), or from a label "
               "raster's category names, attribute table, colour table or .qml style.")

    DESCRIPTIONS = "DESCRIPTIONS"
    TEXT_ENCODER = "TEXT_ENCODER"
    PATCH_SIZE = "PATCH_SIZE"
    EPOCHS_STAGE1 = "EPOCHS_STAGE1"
    EPOCHS_STAGE2 = "EPOCHS_STAGE2"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    SEED = "SEED"
    VALIDATION_FRACTION = "VALIDATION_FRACTION"
    REFIT = "REFIT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    REPORT = "REPORT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_modalities("Give at least two of HS, LIDAR and SAR, covering the training areas.")
        self.add_labels("training")
        self.add(QgsProcessingParameterFile(self.DESCRIPTIONS, "Class descriptions", optional=True,
                                            fileFilter="Class descriptions (*.json *.csv)"),
                 "The table written (and perhaps edited) by <i>Describe classes</i>. Empty: built-in descriptions "
                 "for common land-cover names, a generic sentence for the others.")
        self.add(QgsProcessingParameterString(self.TEXT_ENCODER, "Text encoder", defaultValue="auto"),
                 "Model that turns the descriptions into features: <i>auto</i> (CLIP when its weights are on this "
                 "computer, else MiniLM), <i>minilm</i> (offline all-MiniLM-L6-v2), <i>clip</i>, or "
                 "<i>clip:/path/to/weights.safetensors</i>.", advanced=True)
        self._integer(self.PATCH_SIZE, "Window size (pixels)", "patch_size",
                      "Each pixel is classified from a square window of this many pixels around it; larger sees "
                      "more context but blurs edges and is slower.")
        self._integer(self.EPOCHS_STAGE1, "Epochs of stage 1 (features)", "epochs_stage1",
                      "Passes over the training pixels when learning the features; the best epoch on the validation "
                      "pixels is kept.")
        self._integer(self.EPOCHS_STAGE2, "Epochs of stage 2 (prompts)", "epochs_stage2",
                      "Passes when learning the prompts of each missing-sensor case.")
        self._integer(self.BATCH_SIZE, "Batch size", "batch_size",
                      "Pixels per training step; lower it if the GPU runs out of memory.", advanced=True)
        self.add(number(self.LEARNING_RATE, "Learning rate", "learning_rate", DEFAULTS["learning_rate"]),
                 "Step size of the optimiser (AdamW).", advanced=True)
        self.add_device()
        self._integer(self.SEED, "Random seed", "seed",
                      "The same seed, data and settings give the same model on the same machine.", advanced=True)
        self.add(number(self.VALIDATION_FRACTION, "Validation fraction", "validation_fraction",
                        DEFAULTS["validation_fraction"]),
                 "Share of the labelled pixels of each class held back to choose the best epoch and to report "
                 "accuracy (0: none, the last epoch is kept): whole ROI polygons (blocks of a class drawn as one polygon), at most half of a class, "
                 "with the training pixels within half a window of them left out, so that the validation accuracy "
                 "is not inflated by overlapping windows.", advanced=True)
        self.add(QgsProcessingParameterBoolean(self.REFIT, "Train again on every labelled pixel (refit)",
                                               DEFAULTS["refit"]),
                 "After validation, train the model again from the start on all labelled pixels, for all epochs; "
                 "the validation accuracy reported is that of the run without the validation areas. Doubles the "
                 "training time; on a few hundred pixels it is usually worth several points. Off: the model of "
                 "the best validation epoch is kept.",
                 advanced=True)
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, "Model", fileFilter="LVPC model (*.lvpc)"),
                 "Where to write the trained model (.lvpc); give it to <i>Classify</i>, <i>Evaluate</i> and "
                 "<i>Learn prompts</i>.")
        self.add(QgsProcessingParameterFileDestination(self.REPORT, "Training report", fileFilter="HTML (*.html)",
                                                       optional=True, createByDefault=False),
                 "An HTML page with the pixels per class, the loss and accuracy curves, how the validation "
                 "pixels were held out and the validation accuracy for every combination of available sensors.")

    def _integer(self, name: str, label: str, key: str, help_text: str, advanced: bool = False) -> None:
        self.add(number(name, label, key, DEFAULTS[key]), help_text, advanced)

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows
        from lvpcnet_core.training import TrainSettings

        labels = self.label_source(parameters, context, feedback)
        names, colors = self._style_classes(parameters, context, labels)
        settings = TrainSettings(
            patch_size=self.parameterAsInt(parameters, self.PATCH_SIZE, context),
            epochs_stage1=self.parameterAsInt(parameters, self.EPOCHS_STAGE1, context),
            epochs_stage2=self.parameterAsInt(parameters, self.EPOCHS_STAGE2, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            validation_fraction=self.parameterAsDouble(parameters, self.VALIDATION_FRACTION, context),
            refit=self.parameterAsBoolean(parameters, self.REFIT, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)])
        out_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        workflows.train(
            self.modalities(parameters, context), out_model, labels,
            descriptions=self.parameterAsFile(parameters, self.DESCRIPTIONS, context) or None,
            text_encoder=self.parameterAsString(parameters, self.TEXT_ENCODER, context) or "auto",
            settings=settings, class_names=names, colors=colors, progress=progress, report_path=report_path)
        return {self.OUTPUT_MODEL: out_model, self.REPORT: report_path}

    def _style_classes(self, parameters: dict[str, Any], context: QgsProcessingContext, labels
                       ) -> tuple[dict[int, str] | None, dict[int, tuple[int, int, int]] | None]:
        """Class code -> (label, colour) from the ROI layer's categorized renderer on CLASS_FIELD, when it has one.

        A text field's codes are the engine's: 1..K over the sorted distinct names of the file it reads.
        """
        layer = self.parameterAsVectorLayer(parameters, self.ROIS, context)
        renderer = layer.renderer() if layer is not None else None
        if not isinstance(renderer, QgsCategorizedSymbolRenderer) or renderer.classAttribute() != labels.class_field:
            return None, None
        uri = labels.vector + (f"|layername={labels.layer}" if labels.layer else "")
        source = QgsVectorLayer(uri, "rois", "ogr")
        index = source.fields().lookupField(labels.class_field)
        if index < 0:
            return None, None
        if source.fields().at(index).isNumeric():
            code = {v: int(v) for v in source.uniqueValues(index) if v is not None and str(v) != "NULL"}
        else:
            stripped = sorted({str(v).strip() for v in source.uniqueValues(index) if isinstance(v, str) and v.strip()})
            code = {name: i + 1 for i, name in enumerate(stripped)}
        names, colors = {}, {}
        for category in renderer.categories():
            value = category.value()
            key = value.strip() if isinstance(value, str) else value
            if key not in code or category.symbol() is None:
                continue
            color = category.symbol().color()
            names[code[key]] = category.label() or str(key)
            colors[code[key]] = (color.red(), color.green(), color.blue())
        return names or None, colors or None
