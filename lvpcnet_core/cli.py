"""Command line for machines without QGIS:
`python -m lvpcnet_core train|classify|evaluate|prompts|info|export|describe|demo`.

`torchrun --nproc-per-node N -m lvpcnet_core train|prompts|classify ...` runs the same commands on N processes
(docs/scaling.md); only rank 0 shows progress and prints the result."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .errors import Cancelled, LvpcError
from .limits import LIMITS, modality_name_problem
from .progress import SilentProgress, TqdmProgress


class _Parser(argparse.ArgumentParser):
    """Mistakes on the command line end like every other refusal: one `error:` line, exit 1."""

    def error(self, message: str):
        self.exit(1, f"error: {message} (see {self.prog} --help)\n")


def _modality(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (e.g. hs=scene.tif), got '{text}'")
    name = name.strip().lower()
    problem = modality_name_problem(name)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return name, path


def _number(key: str):
    """The argparse type of an option with a range in `limits.LIMITS`: parsed, then checked against it."""
    limit = LIMITS[key]

    def parse(text: str) -> int | float:
        try:
            value = int(text) if limit.integer else float(text)
        except ValueError:
            value = text
        problem = limit.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = key  # argparse names the type in some messages
    return parse


def _modalities(pairs: list[tuple[str, str]] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, path in pairs or []:
        if name in result:
            raise LvpcError(f"--modality {name} is given twice; give each modality once")
        result[name] = path
    return result


def _names(text: str | None) -> list[str]:
    """A comma-separated list of modality names, as --available and --modalities take them."""
    return [name.strip().lower() for name in (text or "").split(",") if name.strip()]


def _extent(text: str) -> tuple[float, float, float, float]:
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected xmin,ymin,xmax,ymax in the first layer's CRS") from None
    return xmin, ymin, xmax, ymax


def _add_layers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", "-m", action="append", type=_modality, metavar="NAME=PATH",
                   help="a modality layer, any GDAL raster (repeat: --modality hs=hs.tif --modality lidar=dsm.tif)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")


def _add_labels(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("labels (one of --labels or --rois)")
    g.add_argument("--labels", help="label raster, class codes, 0 = unlabelled")
    g.add_argument("--rois", help="polygon or point vector file with training/reference areas")
    g.add_argument("--class-field", help="attribute of --rois holding the class (text or integer)")
    g.add_argument("--roi-layer", help="layer name inside --rois (GeoPackage with several layers)")


def _add_training(p: argparse.ArgumentParser) -> None:
    from .training import TrainSettings

    defaults = TrainSettings()
    g = p.add_argument_group("training options")
    g.add_argument("--patch-size", type=_number("patch_size"), default=defaults.patch_size,
                   help="window size w, odd, 5 to 33 (default %(default)s)")
    g.add_argument("--epochs-stage1", type=_number("epochs_stage1"), default=defaults.epochs_stage1,
                   help="epochs of stage 1 (default %(default)s)")
    g.add_argument("--epochs-stage2", type=_number("epochs_stage2"), default=defaults.epochs_stage2,
                   help="epochs of every stage-2 prompt case (default %(default)s)")
    g.add_argument("--batch-size", type=_number("batch_size"), default=defaults.batch_size, help="default %(default)s")
    g.add_argument("--learning-rate", type=_number("learning_rate"), default=defaults.learning_rate,
                   help="default %(default)s")
    g.add_argument("--patience", type=_number("patience"), default=defaults.patience,
                   help="stop a stage after this many epochs without better validation accuracy, 0 = never (default %(default)s)")
    g.add_argument("--validation-fraction", type=_number("validation_fraction"), default=defaults.validation_fraction,
                   help="share of each class held out for validation as whole ROI polygons, at most half "
                        "(default %(default)s)")
    g.add_argument("--no-refit", dest="refit", action="store_false",
                   help="keep the best validation epoch of the model trained without the validation areas instead of "
                        "training it again on every labelled pixel for all epochs (faster, usually less accurate)")
    g.add_argument("--max-samples-per-class", type=_number("max_samples_per_class"),
                   default=defaults.max_samples_per_class,
                   help="random subset of labelled pixels per class (default %(default)s)")
    g.add_argument("--samples-per-epoch", type=_number("samples_per_epoch"), default=defaults.samples_per_epoch,
                   help="labelled pixels drawn afresh for each epoch, so that many ROI pixels do not make training "
                        "take hours (default %(default)s)")
    g.add_argument("--depth", type=_number("depth"), default=defaults.depth,
                   help="transformer blocks of every encoder: 2 trains 1.4x and classifies 2x faster, at about 0.2-1.8 "
                        "OA points with every sensor (docs/benchmarks/README.md) (default %(default)s)")
    g.add_argument("--seed", type=_number("seed"), default=defaults.seed,
                   help="random seed; same seed on CPU = same model (default %(default)s)")
    g.add_argument("--threads", type=_number("threads"), help="CPU threads for torch (default: torch's, the physical cores)")


def _settings(args: argparse.Namespace):
    from .training import TrainSettings

    names = {f.name for f in fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def _label_source(args: argparse.Namespace):
    from .workflows import LabelSource

    return LabelSource(raster=args.labels, vector=args.rois, class_field=args.class_field, layer=args.roi_layer)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lvpcnet_core", description=(
        "LVPC: multi-modal (HS, LiDAR, SAR...) land-cover classification that keeps working when layers are "
        "missing (LVPCnet: language-guided visual prompt compensation)."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on two or more modalities and labels")
    _add_layers(p)
    _add_labels(p)
    _add_training(p)
    p.add_argument("--descriptions", help="class-description table (.json/.csv from `describe`) to use as language priors")
    p.add_argument("--text-encoder", default="auto",
                   help="auto, minilm, clip, clip:/path/checkpoint.safetensors or clip:MODEL:/path (default auto)")
    p.add_argument("--out", required=True, help="model file to write (.lvpc)")
    p.add_argument("--report", help="HTML training report to write")

    p = sub.add_parser("classify", help="classify a scene with any subset of the model's modalities")
    p.add_argument("--model", required=True, help=".lvpc model file")
    _add_layers(p)
    p.add_argument("--out", help="classified GeoTIFF to write (a .qml style is written beside it)")
    p.add_argument("--scenes", help="instead of --modality/--out: a CSV of scenes, header row with one column per "
                                    "modality (empty cell = missing layer), 'output' and optionally 'confidence'; "
                                    "under torchrun the scenes are spread over the processes")
    p.add_argument("--confidence", help="optional float32 GeoTIFF of the winning class probability")
    p.add_argument("--probabilities", help="optional float32 GeoTIFF of every class's probability, one band per "
                                           "class in the model's class order, named after the class")
    p.add_argument("--extent", type=_extent, help="xmin,ymin,xmax,ymax to classify, in the first layer's CRS")
    p.add_argument("--mask", help="raster (non-zero = classify) or polygon file limiting the area")
    p.add_argument("--block-size", type=_number("block_size"), default=256,
                   help="pixels per side of a processing block, 1 to 4096 (default %(default)s)")
    p.add_argument("--fill", choices=["prompts", "zeros"], default="prompts",
                   help="missing modalities: learned prompts (LVPC) or zero input (ablation vp1) (default %(default)s)")
    p.add_argument("--threads", type=_number("threads"), help="CPU threads for torch")

    p = sub.add_parser("evaluate", help="accuracy (OA, AA, kappa, confusion; with --map class areas and "
                                        "area-adjusted accuracies, Olofsson et al. 2014) on reference labels")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help=".lvpc model file: it classifies the reference pixels with the --modality layers")
    g.add_argument("--map", help="an existing class map (e.g. from classify): adds the estimated class areas and "
                                 "area-weighted accuracies with 95 %% intervals, the map's classes as strata")
    _add_layers(p)
    _add_labels(p)
    p.add_argument("--fill", choices=["prompts", "zeros"], default="prompts", help="as for classify")
    p.add_argument("--json", help="write the figures to this JSON file (keys oa, aa, kappa, per_class, confusion, "
                                  "modalities, area_adjusted)")
    p.add_argument("--html", help="write the accuracy report (tables, confusion matrix) to this HTML file")

    p = sub.add_parser("prompts", help="add or retrain the prompts of one absence case in a model")
    p.add_argument("--model", required=True, help=".lvpc model file")
    _add_layers(p)
    _add_labels(p)
    _add_training(p)
    p.add_argument("--available", required=True, help="comma-separated modalities available in the case, e.g. lidar")
    p.add_argument("--out", required=True, help="model file to write (may be --model to update it in place)")

    p = sub.add_parser("info", help="what a model file holds: classes, sensors and bands, training grid, absence "
                                    "cases and their validation accuracy, settings, versions, training date")
    p.add_argument("model", help=".lvpc model file (only its metadata is read)")
    p.add_argument("--json", help="write the information to this JSON file")
    p.add_argument("--html", help="write it as an HTML page")

    p = sub.add_parser("export", help="write one absence case of a model as an ONNX graph of whole blocks, for ONNX "
                                      "Runtime and the QGIS plugin Deepness")
    p.add_argument("model", help=".lvpc model file")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx",
                   help="ONNX file to write: input 'bands' (N, C, H, W), the raw bands of the available modalities "
                        "stacked in the model's order; output 'probabilities' (N, classes, H, W)")
    p.add_argument("--available", help="comma-separated modalities the graph takes, e.g. lidar; the model's prompts "
                                       "stand in for the others (default: all of the model's modalities)")
    p.add_argument("--tile-size", type=_number("tile_size"),
                   help="fix the input to this many pixels a side, 64 to 4096 (Deepness needs a fixed tile: 256 "
                        "suits it); default: any size")

    p = sub.add_parser("describe", help="write the editable class-description table (language priors)")
    p.add_argument("--classes", help="comma-separated class names")
    p.add_argument("--modalities", default="hs,lidar", help="comma-separated modality names (default %(default)s)")
    p.add_argument("--out", required=True, help=".json or .csv file to write")

    p = sub.add_parser("demo", help="train on the bundled demo scene, classify it, print where the map is")
    p.add_argument("--out-dir", default="demo/output", help="folder for the model and maps (default %(default)s)")
    p.add_argument("--device", default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import distributed

    args = build_parser().parse_args(argv)
    progress = TqdmProgress(args.command) if distributed.is_main() else SilentProgress()
    try:
        distributed.start(args.command, getattr(args, "device", "auto"))
        result = _run(args, progress)
    except LvpcError as exc:
        _close(progress)
        print(f"error{distributed.where()}: {exc}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        _close(progress)
        print(f"cancelled{distributed.where()}: nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:
        if not distributed.active():
            raise
        _close(progress)   # a collective failed: the peer is gone, this rank's outputs are already deleted
        print(f"error{distributed.where()}: {distributed.failure(exc)}", file=sys.stderr)
        return 1
    finally:
        distributed.stop()
    _close(progress)
    if result is not None and distributed.is_main():
        print(json.dumps(result, indent=2, default=str))
    return 0


def _close(progress) -> None:
    if isinstance(progress, TqdmProgress):
        progress.close()


def _run(args: argparse.Namespace, progress: TqdmProgress):
    from . import workflows

    if args.command == "train":
        settings = _settings(args)
        settings.device = args.device
        report = workflows.train(_modalities(args.modality), args.out, _label_source(args),
                                 descriptions=args.descriptions, text_encoder=args.text_encoder,
                                 settings=settings, progress=progress, report_path=args.report)
        return {"model": args.out, "validation_oa": report["validation"], "seconds": round(report["seconds"], 1)}
    if args.command == "classify":
        options = dict(device=args.device, block_size=args.block_size, fill=args.fill, threads=args.threads,
                       progress=progress)
        if args.scenes:
            if args.modality or args.out or args.confidence or args.probabilities or args.extent or args.mask:
                raise LvpcError("--scenes names every scene's layers and outputs: leave out --modality, --out, "
                                "--confidence, --probabilities, --extent and --mask")
            return workflows.classify_scenes(args.model, args.scenes, **options)
        if not args.out:
            raise LvpcError("classify needs --out (the map to write), or --scenes (a CSV of scenes)")
        return workflows.classify(args.model, _modalities(args.modality), args.out, confidence=args.confidence,
                                  probabilities=args.probabilities, extent=args.extent, mask=args.mask, **options)
    if args.command == "evaluate":
        result = workflows.evaluate(args.model, _modalities(args.modality), _label_source(args), map_path=args.map,
                                    fill=args.fill, device=args.device, json_path=args.json, html_path=args.html,
                                    progress=progress)
        area = result["area_adjusted"]
        return {**{k: result[k] for k in ("oa", "aa", "kappa", "n", "modalities")},
                "oa_area": area["overall_accuracy"] if area else None}
    if args.command == "prompts":
        settings = _settings(args)
        settings.device = args.device
        return workflows.learn_prompts(args.model, _modalities(args.modality), _label_source(args),
                                       _names(args.available),
                                       args.out, settings=settings, progress=progress)
    if args.command == "info":
        from .report import model_summary

        print(model_summary(workflows.model_information(args.model, json_path=args.json, html_path=args.html)))
        return None
    if args.command == "export":
        return workflows.export_onnx(args.model, args.onnx, _names(args.available), tile_size=args.tile_size,
                                     progress=progress)
    if args.command == "describe":
        classes = [c.strip() for c in (args.classes or "").split(",") if c.strip()]
        modalities = _names(args.modalities)
        return {"descriptions": workflows.describe(classes, modalities, args.out)}
    if args.command == "demo":
        return run_demo(Path(args.out_dir), args.device, progress)
    raise AssertionError(args.command)


def run_demo(out_dir: Path, device: str, progress) -> dict:
    """Train on demo/ (Sentinel-2 as HS, DEM as LiDAR), classify the full scene and the DEM-only case."""
    from . import workflows

    demo = Path(__file__).resolve().parent.parent / "demo"
    if not (demo / "s2_l1c_20150711.tif").exists():
        raise LvpcError(f"the demo scene is not in {demo}; run from a checkout of the LVPC repository")
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = {"hs": str(demo / "s2_l1c_20150711.tif"), "lidar": str(demo / "dem.tif")}
    labels = workflows.LabelSource(vector=str(demo / "rois.gpkg"), class_field="class")
    model = str(out_dir / "demo.lvpc")
    from .training import TrainSettings

    workflows.train(layers, model, labels, settings=TrainSettings(device=device), progress=progress)
    full = workflows.classify(model, layers, str(out_dir / "demo_map.tif"),
                              confidence=str(out_dir / "demo_confidence.tif"), device=device, progress=progress)
    dem_only = workflows.classify(model, {"lidar": layers["lidar"]}, str(out_dir / "demo_map_lidar_only.tif"),
                                  device=device, progress=progress)
    return {"map": full["output"], "confidence": full["confidence"], "map_lidar_only": dem_only["output"],
            "model": model}
