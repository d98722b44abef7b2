"""lvpc:learnprompts: add or retrain the prompts of one absence case on an existing model, nothing else changes."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
)

from .base import DEVICES, MODALITIES, FeedbackProgress, LvpcAlgorithm, number
from .train import DEFAULTS


class LearnPromptsAlgorithm(LvpcAlgorithm):
    NAME = "learnprompts"
    DISPLAY_NAME = "Learn prompts for a missing sensor"
    GROUP_ID = "classification"
    GROUP = "Classification"
    SUMMARY = ("Teaches an existing model to classify with only some of its sensors: learns (or relearns) the visual "
               "prompts that stand in for the missing ones, from pixels where all sensors are there. The features, "
               "the classifier and the other prompts stay exactly as they were; the result is a new model file.")

    AVAILABLE = "AVAILABLE"
    EPOCHS = "EPOCHS"
    OUTPUT_MODEL = "OUTPUT_MODEL"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add_model()
        self.add_modalities("Give every layer the model was trained with: the prompts learn to rebuild the missing "
                            "ones from the others.")
        self.add_labels("training")
        self.add(QgsProcessingParameterEnum(self.AVAILABLE, "Sensors that will be available",
                                            options=[label for _, label in MODALITIES.values()], allowMultiple=True),
                 "The sensors you will have when classifying (e.g. only LiDAR); the prompts for this case are learned.")
        self.add(number(self.EPOCHS, "Epochs", "epochs_stage2", DEFAULTS["epochs_stage2"]),
                 "Passes over the training pixels; the best epoch on the validation pixels is kept.")
        self.add_device()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, "Model with the new prompts",
                                                       fileFilter="LVPC model (*.lvpc)"),
                 "Where to write the updated model; may be another name than MODEL, so the original stays.")

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from lvpcnet_core import workflows
        from lvpcnet_core.training import TrainSettings

        keys = list(MODALITIES)
        out_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        settings = TrainSettings(epochs_stage2=self.parameterAsInt(parameters, self.EPOCHS, context),
                                 device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)])
        result = workflows.learn_prompts(
            self.parameterAsFile(parameters, self.MODEL, context), self.modalities(parameters, context),
            self.label_source(parameters, context, feedback),
            [keys[i] for i in self.parameterAsEnums(parameters, self.AVAILABLE, context)], out_model,
            settings=settings, progress=progress)
        accuracy = "no validation" if result["val_oa"] is None else f"validation OA {result['val_oa']:.2f} %"
        progress.info(f"prompts for {result['case']} available: {accuracy} (best epoch {result['best_epoch']})")
        return {self.OUTPUT_MODEL: out_model}
