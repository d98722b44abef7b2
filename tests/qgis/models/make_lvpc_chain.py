"""Writes lvpc_chain.model3: describeclasses -> train -> classify -> evaluate, as the graphical modeler would save it.

Run with QGIS's Python when the chain changes: `QT_QPA_PLATFORM=offscreen .venv/bin/python tests/qgis/models/make_lvpc_chain.py`.
The model's inputs: HS and LIDAR rasters, ROI polygons with their class field, reference ROIs, the epochs of both
training stages and the text encoder; outputs: the classified map, the accuracy report and (via evaluate) OA.
"""
from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF

HERE = Path(__file__).resolve().parent


def model_input(name: str) -> QgsProcessingModelChildParameterSource:
    return QgsProcessingModelChildParameterSource.fromModelParameter(name)


def child_output(child: str, output: str) -> QgsProcessingModelChildParameterSource:
    return QgsProcessingModelChildParameterSource.fromChildOutput(child, output)


def static(value) -> QgsProcessingModelChildParameterSource:
    return QgsProcessingModelChildParameterSource.fromStaticValue(value)


def build() -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("LVPC chain", "LVPC")
    inputs = [
        QgsProcessingParameterRasterLayer("hs", "HS image"),
        QgsProcessingParameterRasterLayer("lidar", "LiDAR raster"),
        QgsProcessingParameterFeatureSource("rois", "Training ROIs", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterField("class_field", "Class field", parentLayerParameterName="rois"),
        QgsProcessingParameterFeatureSource("reference", "Reference ROIs", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterNumber("epochs_stage1", "Epochs of stage 1", defaultValue=100, minValue=1),
        QgsProcessingParameterNumber("epochs_stage2", "Epochs of stage 2", defaultValue=40, minValue=1),
        QgsProcessingParameterString("text_encoder", "Text encoder", defaultValue="auto"),
    ]
    for i, parameter in enumerate(inputs):
        component = QgsProcessingModelParameter(parameter.name())
        component.setPosition(QPointF(120, 60 + 70 * i))
        model.addModelParameter(parameter, component)

    layers = {"HS": [model_input("hs")], "LIDAR": [model_input("lidar")]}
    steps = [
        ("describe", "lvpc:describeclasses", {"VECTOR": [model_input("rois")],
                                              "CLASS_FIELD": [model_input("class_field")],
                                              "MODALITIES": [static([0, 1])]}, {}),
        ("train", "lvpc:train", {**layers, "ROIS": [model_input("rois")], "CLASS_FIELD": [model_input("class_field")],
                                 "DESCRIPTIONS": [child_output("describe", "OUTPUT")],
                                 "TEXT_ENCODER": [model_input("text_encoder")],
                                 "EPOCHS_STAGE1": [model_input("epochs_stage1")],
                                 "EPOCHS_STAGE2": [model_input("epochs_stage2")]}, {}),
        ("classify", "lvpc:classify", {**layers, "MODEL": [child_output("train", "OUTPUT_MODEL")]},
         {"Classified map": "OUTPUT"}),
        ("evaluate", "lvpc:evaluate", {**layers, "MODEL": [child_output("train", "OUTPUT_MODEL")],
                                       "ROIS": [model_input("reference")], "CLASS_FIELD": [model_input("class_field")]},
         {"Accuracy report": "OUTPUT_HTML"}),
    ]
    for i, (child_id, algorithm, sources, outputs) in enumerate(steps):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        child.setChildId(child_id)
        child.setDescription(child_id)
        child.setPosition(QPointF(420, 80 + 160 * i))
        for name, value in sources.items():
            child.addParameterSources(name, value)
        model_outputs = {}
        for label, output in outputs.items():
            model_output = QgsProcessingModelOutput(label, label)
            model_output.setChildId(child_id)
            model_output.setChildOutputName(output)
            model_outputs[label] = model_output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
    return model


def main() -> int:
    app = QgsApplication([], False)
    app.initQgis()
    path = HERE / "lvpc_chain.model3"
    if not build().toFile(str(path)):
        print(f"could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
