"""The five jobs of LVPC, as the command line and the QGIS algorithms call them.

Each function takes file paths and plain options, reports through a `Progress`, raises `LvpcError` for
anything the user can fix, and writes its outputs atomically (nothing half-written, nothing of the user's
replaced unless the run completes).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .files import check_outputs
from .limits import check_modality_names, check_options
from .progress import LvpcError, Progress, SilentProgress, check_cancel

if TYPE_CHECKING:
    from .sampling import Samples


@dataclass
class LabelSource:
    """Training or reference labels: a raster (0 = unlabelled) or a vector layer with a class field."""

    raster: str | None = None
    vector: str | None = None
    class_field: str | None = None
    layer: str | None = None

    def __post_init__(self) -> None:
        if bool(self.raster) == bool(self.vector):
            raise LvpcError("give training labels either as a label raster (LABELS) or as ROI polygons/points "
                            "(ROIS with CLASS_FIELD), exactly one of them")
        if self.vector and not self.class_field:
            raise LvpcError("CLASS_FIELD is required with ROIS: name the attribute that holds the class")

    def inputs(self) -> dict[str, str | None]:
        """The label files by parameter, for the output policy."""
        return {"LABELS": self.raster, "ROIS": self.vector}


def _layers(modalities: dict[str, str]) -> dict[str, str]:
    """Modality layers by parameter name (HS, LIDAR, SAR), as messages name them."""
    return {m.upper(): path for m, path in modalities.items()}


def _labels_on_grid(source: LabelSource, grid, log, known: dict[str, int] | None = None
                    ) -> tuple[np.ndarray, list[int], list[str]]:
    """Label image on the grid, class codes and names; `known` maps a model's class names to codes."""
    from . import raster_io

    if source.vector:
        return raster_io.rasterize_rois(source.vector, source.class_field, grid, layer=source.layer,
                                        class_values=known, log=log)
    labels = raster_io.read_labels(source.raster, grid, log=log)
    values = [int(v) for v in np.unique(labels) if v != 0]
    return labels, values, [f"class {v}" for v in values]


def write_json(path: str | os.PathLike, data: dict, parameter: str = "OUTPUT_JSON") -> None:
    """JSON written atomically, so a failed run leaves the old file."""
    from .files import atomic_output, json_value

    with atomic_output(path, parameter) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False, default=json_value)


def train(modalities: dict[str, str], out_model: str, labels: LabelSource, *, descriptions: str | None = None,
          text_encoder: str = "auto", settings=None, class_names: dict[int, str] | None = None,
          colors: dict[int, tuple[int, int, int]] | None = None, progress: Progress | None = None,
          report_path: str | None = None) -> dict:
    """Layers + labels -> a trained `.lvpc` model (stage 1, then prompts for every absence case), and optionally
    its HTML training report."""

    from . import language, raster_io, text_encoders
    from . import report as html
    from .model_file import ModelInfo, save_model
    from .training import TrainSettings, resolve_device

    progress = progress or SilentProgress()
    settings = settings or TrainSettings()
    if len(modalities) < 2:
        raise LvpcError(f"training needs at least two modalities (HS, LIDAR, SAR), got {len(modalities)}: "
                        "add a second layer, or use a single-modality classifier instead")
    check_modality_names(modalities)
    check_options(settings.to_dict())
    check_outputs({"OUTPUT_MODEL": out_model, "REPORT": report_path},
                  {**_layers(modalities), **labels.inputs(), "DESCRIPTIONS": descriptions})
    resolve_device(settings.device)
    started = time.perf_counter()
    with raster_io.AlignedStack(modalities, log=progress.info) as stack:
        arrays = stack.read_all()
        grid = stack.grid
    label_image, values, names = _labels_on_grid(labels, grid, progress.info)
    names = [class_names.get(v, n) for v, n in zip(values, names)] if class_names else names
    palette = raster_io.default_colors(len(values))
    palette = [tuple(colors.get(v, c)) for v, c in zip(values, palette)] if colors else palette
    order = list(modalities)
    table = (language.DescriptionTable.load(descriptions) if descriptions
             else language.build_descriptions(names, order, log=progress.info))
    table = table.validate(names, order)
    # the v1 ablation (no language) must not depend on a text encoder in any way: none is loaded
    encoder = text_encoders.load_text_encoder(text_encoder, log=progress.info) if settings.language else None
    model, report = fit_arrays(arrays, label_image, values, names, table, encoder, settings, progress)
    report.update(seconds=time.perf_counter() - started, grid={"width": grid.width, "height": grid.height})
    info = ModelInfo(values, names, palette, table.to_dict(), report["text_encoder"], report)
    save_model(out_model, model, info)
    progress.set_progress(100.0)
    progress.info(f"model written to {out_model} ({report['seconds']:.0f} s)")
    if report_path:
        html.write_html(report_path, html.training_report(report))
        progress.info(f"training report written to {report_path}")
    return report


def fit_arrays(arrays: dict[str, np.ndarray], label_image: np.ndarray, values: list[int], names: list[str], table,
               encoder, settings, progress: Progress):
    """Samples -> trained LVPCNet (stage 1, then every absence case) from in-memory, co-registered arrays.

    The file-free core of `train`, also used by the benchmarks on datasets that come as arrays (.mat, .npy).
    One modality is allowed here (the single-modality baselines); it then has no absence cases.
    """
    import torch

    from . import sampling, text_encoders
    from .encoders import ModelConfig
    from .network import PROTOTYPE_DIM, absence_cases
    from .report import validation_lines
    from .training import resolve_device

    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device, log=progress.info)
    if len(values) < 2:
        raise LvpcError("the training labels hold only one class; LVPC needs at least two classes to learn")
    stats = {m: sampling.band_statistics(a, m, seed=settings.seed) for m, a in arrays.items()}
    samples = sampling.make_samples(arrays, label_image, values, settings.patch_size, stats,
                                    settings.max_samples_per_class, settings.seed)
    complete = samples.available.all(1)
    if not complete.any():
        raise LvpcError("no labelled pixel has valid data in every layer; check that the ROIs lie where all the layers overlap")
    if (~complete).any():
        progress.info(f"{int((~complete).sum())} labelled pixels lie on nodata of some layer and are not used for training")
    samples = samples.subset(np.flatnonzero(complete))
    counts = np.bincount(samples.labels, minlength=len(values))
    progress.info("training pixels per class: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)))
    for name, count in zip(names, counts):
        if count == 0:
            raise LvpcError(f"class '{name}' has no labelled pixel with data in every layer; remove it or add ROIs for it")
    train_set, val_set, split = _split(samples, label_image, values, names, settings.patch_size, settings, progress)
    order = list(arrays)
    if (encoder is None) == settings.language:
        raise ValueError("a text encoder is needed exactly when training with language priors")
    texts = text_encoders.encode_descriptions(table, encoder) if encoder is not None else None
    check_cancel(progress)

    cfg = ModelConfig(modalities=order, bands={m: int(a.shape[0]) for m, a in arrays.items()}, n_classes=len(values),
                      text_dim=encoder.dim if encoder is not None else PROTOTYPE_DIM, patch_size=settings.patch_size,
                      token_grid=settings.token_grid, stem_depth=settings.stem_depth,
                      width=settings.width, depth=settings.depth, heads=settings.heads,
                      prompt_length=settings.prompt_length, extra=settings.ablation())
    progress.info(f"training on {device.type}: {len(train_set)} training and {len(val_set)} validation pixels, "
                  f"{len(values)} classes, modalities {', '.join(order)}")
    started = time.perf_counter()
    refit = settings.refit and len(val_set) > 0
    model = _new_model(cfg, stats, texts, settings.seed, device)
    cases = [model.ordered(c) for c in (settings.cases if settings.cases is not None else absence_cases(order))]
    stage1, fits = _train_stages(model, cases, train_set, val_set, settings, progress, (5.0, 50.0 if refit else 95.0))
    validation = validation_accuracy(model, val_set, cases)
    if refit:
        progress.info(f"refit: training again on all {len(samples)} labelled pixels for the whole schedule; the "
                      "validation figures above are those of the run without the validation areas")
        model = _new_model(cfg, stats, texts, settings.seed, device)
        _train_stages(model, cases, samples, None, settings, progress, (50.0, 95.0))
    report = {
        "class_counts": dict(zip(names, counts.tolist())), "modalities": order,
        "stage1": {"best_epoch": stage1.best_epoch, "val_oa": _percent(stage1.best_accuracy),
                   "history": stage1.history, "seconds": stage1.seconds},
        "stage2": {"+".join(c): {"best_epoch": f.best_epoch, "val_oa": _percent(f.best_accuracy), "history": f.history}
                   for c, f in zip(cases, fits)},
        "validation": validation, "refit": refit, "fit_seconds": time.perf_counter() - started,
        "settings": settings.to_dict(), "device": device.type,
        "text_encoder": encoder.name if encoder is not None else "none (v1: learned class prototypes)",
        "n_train": len(train_set), "n_val": len(val_set), "validation_split": split,
    }
    for line in validation_lines(report):
        progress.info(line)
    return model, report


def _percent(accuracy: float | None) -> float | None:
    return None if accuracy is None else 100 * accuracy


def _new_model(cfg, stats: dict, texts: tuple | None, seed: int, device):
    """A fresh network with the training scene's band statistics and the class targets (text features)."""
    import torch

    from .network import LVPCNet
    from .training import seed_everything

    seed_everything(seed)
    model = LVPCNet(cfg)
    with torch.no_grad():
        for m in cfg.modalities:
            getattr(model, f"mean_{m}").copy_(torch.from_numpy(stats[m][0]))
            getattr(model, f"std_{m}").copy_(torch.from_numpy(stats[m][1]))
        if texts is not None:
            targets = {"shared": texts[0], **texts[1]}
            for key in model.target_keys():
                getattr(model, f"text_{key}").copy_(torch.from_numpy(targets[key]))
    return model.to(device)


def _train_stages(model, cases: list[tuple[str, ...]], train: Samples, val: Samples | None, settings,
                  progress: Progress, span: tuple[float, float]):
    """Stage 1, then the prompts of every absence case; without `val` (the refit) each keeps its last epoch."""
    from .training import train_stage1, train_stage2

    middle = span[0] + (span[1] - span[0]) * 0.6 if cases else span[1]
    stage1 = train_stage1(model, train, val, settings, progress, (span[0], middle))
    fits = []
    for i, case in enumerate(cases):
        part = (middle + (span[1] - middle) * i / len(cases), middle + (span[1] - middle) * (i + 1) / len(cases))
        fits.append(train_stage2(model, case, train, val, settings, progress, part))
    return stage1, fits


def _split(samples: Samples, label_image: np.ndarray, values: list[int], names: list[str], patch_size: int, settings,
           progress: Progress) -> tuple[Samples, Samples, dict]:
    """Training and validation samples, the validation spatially separate from training, and the split as a dict.

    Logged in one line, as the user judges the validation accuracy by it."""
    from .report import split_summary
    from .sampling import spatial_split

    split = spatial_split(label_image, values, samples.rows, samples.cols, samples.labels,
                          settings.validation_fraction, patch_size, settings.seed)
    summary = split.to_dict(names)
    progress.info(split_summary(summary))
    return samples.subset(split.train), samples.subset(split.val), summary


def validation_accuracy(model, samples, cases) -> dict:
    """Validation OA (percent) of the complete model and of every case, with prompts and zero-filled; none without
    validation pixels."""
    import torch

    from .training import predict_logits

    if len(samples) == 0:
        return {}
    windows = {m: torch.from_numpy(w) for m, w in samples.windows.items()}
    result = {}
    for case in [tuple(model.cfg.modalities), *cases]:
        for fill in (("prompts",) if len(case) == len(model.cfg.modalities) else ("prompts", "zeros")):
            logits = predict_logits(model, windows, case, fill)
            result[f"{'+'.join(case)}|{fill}"] = 100 * float((logits.argmax(1).numpy() == samples.labels).mean())
    return result


def classify(model_path: str, modalities: dict[str, str], out_map: str, *, confidence: str | None = None,
             extent: tuple[float, float, float, float] | None = None, mask: str | None = None, device: str = "auto",
             block_size: int = 256, fill: str = "prompts", threads: int | None = None,
             progress: Progress | None = None) -> dict:
    """Model + any subset of its modalities -> classified GeoTIFF (+ confidence), block by block."""
    import torch

    from . import raster_io
    from .compatibility import ModelLayers
    from .model_file import load_model
    from .predict import ScenePredictor, classify_scene
    from .training import resolve_device

    progress = progress or SilentProgress()
    check_options({"block_size": block_size, "threads": threads})
    check_outputs({"OUTPUT": out_map, "CONFIDENCE": confidence},
                  {"MODEL": model_path, **_layers(modalities), "MASK": mask},
                  sidecars={"OUTPUT": raster_io.ClassMapWriter.sidecars(out_map, style=True),
                            "CONFIDENCE": raster_io.ClassMapWriter.sidecars(confidence, style=False) if confidence
                            else []})
    if threads:
        torch.set_num_threads(threads)
    model, info = load_model(model_path, resolve_device(device, log=progress.info))
    expects = ModelLayers.of_model(model)
    available = expects.available(modalities, fill)
    started = time.perf_counter()
    ordered = {m: modalities[m] for m in available}
    with raster_io.gdal_cache_limit(), raster_io.AlignedStack(ordered, extent=extent, log=progress.info) as stack:
        expects.check_bands(stack.bands)
        grid = stack.grid
        mask_reader = raster_io.read_mask(mask, grid) if mask else None
        progress.info(f"classifying {grid.width} x {grid.height} pixels with {', '.join(available)}"
                      + ("" if len(available) == len(model.cfg.modalities) else
                         f" ({'learned prompts' if fill == 'prompts' else 'zero-filled'} for the missing modalities)"))
        predictor = ScenePredictor(model, info.class_values, fill=fill)
        with raster_io.ClassMapWriter(out_map, grid, info.class_values, info.class_names, info.colors,
                                      confidence_path=confidence) as writer:
            cases = classify_scene(
                predictor, stack, grid.width, grid.height,
                lambda b: writer.write(b.xoff, b.yoff, b.classes, b.confidence if confidence else None),
                progress, block_size,
                mask=(lambda x, y, w, h: mask_reader[y:y + h, x:x + w]) if mask_reader is not None else None)
    seconds = time.perf_counter() - started
    pixels = grid.width * grid.height
    summary = {"output": out_map, "confidence": confidence, "width": grid.width, "height": grid.height,
               "seconds": seconds, "pixels_per_second": pixels / seconds if seconds else None,
               "pixels_per_case": {"+".join(c): n for c, n in cases.items()}}
    for case, n in cases.items():
        progress.info(f"{n} pixels classified with {'+'.join(case)}")
    progress.info(f"map written to {out_map} ({pixels / seconds:.0f} pixels/s)")
    return summary


def evaluate(model_path: str | None, modalities: dict[str, str], reference: LabelSource, *,
             map_path: str | None = None, fill: str = "prompts", device: str = "auto", json_path: str | None = None,
             html_path: str | None = None, progress: Progress | None = None) -> dict:
    """Accuracy on reference labels of a model (it classifies the reference pixels, with the given subset of
    modalities) or of an existing class map (`map_path`); optionally as JSON and HTML.

    OA, AA and kappa are the sample's, as papers report them. The area-adjusted figures of Olofsson et al. (2014)
    (class areas, UA, PA, F1, OA with 95 % intervals) need the map's pixel count per class as strata, so only a
    map gives them: a model alone classifies the reference pixels, not the scene, and classifying the whole scene
    here would cost a classify run (lvpc:classify, then evaluate its map with MAP).
    """
    from . import report

    progress = progress or SilentProgress()
    if bool(model_path) == bool(map_path):
        raise LvpcError("give exactly one of MODEL (the model classifies the reference pixels) or MAP (an existing "
                        "class map, e.g. written by lvpc:classify), " + ("not both" if model_path else "not neither"))
    if map_path and modalities:
        raise LvpcError(f"with MAP, the map is evaluated as it is: leave {', '.join(_layers(modalities))} empty, or "
                        "give MODEL instead of MAP to classify the reference pixels with those layers")
    check_outputs({"OUTPUT_JSON": json_path, "OUTPUT_HTML": html_path},
                  {"MODEL": model_path, "MAP": map_path, **_layers(modalities), **reference.inputs()})
    if map_path:
        result = _evaluate_map(map_path, reference, progress)
    else:
        result = _evaluate_model(model_path, modalities, reference, fill, device, progress)
    area = result["area_adjusted"]
    if area:
        oa = area["overall_accuracy"]
        progress.info("area-adjusted (Olofsson et al. 2014): OA " + (
            f"{oa['estimate']:.2f} % +- {oa['ci95']:.2f}" if oa["ci95"] is not None else
            f"{oa['estimate']:.2f} %" if oa["estimate"] is not None else "n/a (a mapped class has no reference pixel)"))
    if json_path:
        write_json(json_path, result)
    if html_path:
        report.write_html(html_path, report.evaluation_report(result), "OUTPUT_HTML")
    return result


def _evaluate_model(model_path: str, modalities: dict[str, str], reference: LabelSource, fill: str, device: str,
                    progress: Progress) -> dict:
    """The model classifies the reference pixels: sample figures only (no map, so no strata)."""
    from . import raster_io
    from .compatibility import ModelLayers
    from .model_file import load_model
    from .training import resolve_device

    model, info = load_model(model_path, resolve_device(device, log=progress.info))
    expects = ModelLayers.of_model(model)
    available = expects.available(modalities, fill)
    ordered = {m: modalities[m] for m in available}
    with raster_io.AlignedStack(ordered, log=progress.info) as stack:
        expects.check_bands(stack.bands)
        arrays = stack.read_all()
        grid = stack.grid
    known = dict(zip(info.class_names, info.class_values))
    label_image, values, _ = _labels_on_grid(reference, grid, progress.info, known if reference.vector else None)
    foreign = sorted(set(values) - set(info.class_values))
    if foreign:
        progress.info(f"reference classes {foreign} are not classes of the model and are ignored")
    absent = [n for n, v in zip(info.class_names, info.class_values) if v not in values]
    if absent:
        progress.info(f"the reference has no pixel of the model's classes {absent}")
    result = evaluate_arrays(model, info.class_values, info.class_names, arrays, label_image, fill, progress)
    progress.info(f"OA {result['oa']:.2f} %, AA {result['aa']:.2f} %, kappa {result['kappa']:.2f} "
                  f"on {result['n']} reference pixels with {', '.join(available)}")
    result["area_adjusted"] = None
    return result


def _evaluate_map(map_path: str, reference: LabelSource, progress: Progress) -> dict:
    """An existing class map against the reference: sample figures and, with the map's pixels per class as
    strata, Olofsson et al.'s area-adjusted ones."""
    from . import accuracy, metrics, raster_io

    grid, named = raster_io.class_map_info(map_path)
    known = {n: c for c, n in named.items()} if reference.vector and named else None
    label_image, values, reference_names = _labels_on_grid(reference, grid, progress.info, known)
    if reference.vector and not named and reference_names != [str(v) for v in values]:
        raise LvpcError(f"the ROIs' field '{reference.class_field}' holds class names, but MAP {map_path} has no "
                        "class names to match them with: use an integer field of the map's class codes, a label "
                        "raster (LABELS), or a map written by lvpc:classify (it names its classes)")
    counts, mapped = raster_io.scan_class_map(map_path, label_image)
    in_map = set(np.flatnonzero(counts).tolist()) | set(named)
    if not in_map & set(values):
        raise LvpcError(f"MAP {map_path} (classes {sorted(in_map)}) and the reference (classes {sorted(values)}) "
                        "share no class code: the reference must use the map's class codes (a label raster of the "
                        "same codes, or ROIs whose class field holds the map's class names or codes)")
    codes = sorted(in_map | set(values))
    only_reference = sorted(set(values) - in_map)
    if only_reference:
        progress.info(f"reference classes {only_reference} never occur in the map: they count as omitted by it")
    names = [named.get(c, f"class {c}") for c in codes]
    index = np.full(256, -1)
    index[codes] = np.arange(len(codes))
    truth = label_image[label_image != 0]
    scored = mapped != 0
    if not scored.any():
        raise LvpcError(f"no reference pixel lies on a classified pixel of MAP {map_path}: check that the reference "
                        "covers the map")
    result = metrics.summarise(metrics.confusion(index[truth[scored]], index[mapped[scored]], len(codes)), names)
    pixels = counts[codes]
    unit = raster_io.hectares_per_pixel(grid)
    area = accuracy.assess(accuracy.error_matrix(result["confusion"]), pixels, names, unit, "ha" if unit else None)
    result.update(map=map_path, modalities=[], unclassified_reference_pixels=int((~scored).sum()),
                  area_adjusted=area.to_dict())
    progress.info(f"OA {result['oa']:.2f} %, AA {result['aa']:.2f} %, kappa {result['kappa']:.2f} on {result['n']} "
                  f"reference pixels of the map {map_path} ({int(pixels.sum())} classified pixels)")
    if area.unsampled:
        progress.info(f"map classes {area.unsampled} have no reference pixel: the area-adjusted figures that "
                      "need them are n/a; add reference pixels in every map class")
    return result


def evaluate_arrays(model, class_values: list[int], class_names: list[str], arrays: dict[str, np.ndarray],
                    label_image: np.ndarray, fill: str = "prompts", progress: Progress | None = None,
                    chunk: int = 20000) -> dict:
    """Metrics at the labelled pixels of in-memory arrays; each pixel uses the case of its valid modalities.

    Windows are cut `chunk` pixels at a time, so a reference map of millions of pixels fits in memory."""
    import torch

    from . import metrics, sampling
    from .training import predict_logits

    progress = progress or SilentProgress()
    stats = {m: model.band_statistics(m) for m in arrays}
    rows, cols, reference = sampling.labelled_pixels(label_image, class_values, None, 0)
    if len(rows) == 0:
        raise LvpcError("no reference pixel of the model's classes lies inside the layers; check the reference labels")
    predicted = np.full(len(rows), -1)
    names = list(arrays)
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        samples = sampling.make_samples_at(arrays, rows[part], cols[part], reference[part], model.cfg.patch_size, stats)
        codes = samples.available.astype(np.int64) @ (1 << np.arange(len(names)))
        for code in np.unique(codes):
            if code == 0:
                continue
            idx = np.flatnonzero(codes == code)
            case = model.ordered([m for i, m in enumerate(names) if code >> i & 1])
            windows = {m: torch.from_numpy(samples.windows[m][idx]) for m in case}
            predicted[start + idx] = predict_logits(model, windows, case, fill).argmax(1).numpy()
            check_cancel(progress)
    labels = reference
    scored = predicted >= 0
    result = metrics.summarise(metrics.confusion(labels[scored], predicted[scored], len(class_values)),
                               class_names)
    result["modalities"] = list(model.ordered(names))
    result["fill"] = fill
    result["unclassified_reference_pixels"] = int((~scored).sum())
    return result


def learn_prompts(model_path: str, modalities: dict[str, str], labels: LabelSource, available: list[str],
                  out_model: str, *, settings=None, progress: Progress | None = None) -> dict:
    """Adds (or retrains) the prompts of one absence case; nothing else in the model changes."""
    from . import raster_io, sampling
    from .compatibility import ModelLayers
    from .model_file import load_model, save_model
    from .training import TrainSettings, resolve_device, seed_everything, train_stage2

    progress = progress or SilentProgress()
    settings = settings or TrainSettings()
    check_options(settings.to_dict())
    # the one output that may be an input: a model updated in place, as the user asked by naming it twice
    check_outputs({"OUTPUT_MODEL": out_model}, {"MODEL": model_path, **_layers(modalities), **labels.inputs()},
                  replaceable={"MODEL"})
    model, info = load_model(model_path, resolve_device(settings.device, log=progress.info))
    missing = [m for m in model.cfg.modalities if m not in modalities]
    if missing:
        raise LvpcError(f"learning prompts needs every modality of the model present, to learn what to rebuild: "
                        f"give {', '.join(m.upper() for m in missing)} too")
    case = model.ordered(available)
    if not case or len(case) == len(model.cfg.modalities) or len(case) != len(set(available)):
        raise LvpcError(f"AVAILABLE must name one to {len(model.cfg.modalities) - 1} of the model's modalities "
                        f"({', '.join(model.cfg.modalities)}), got {', '.join(available) or 'none'}")
    with raster_io.AlignedStack({m: modalities[m] for m in model.cfg.modalities}, log=progress.info) as stack:
        ModelLayers.of_model(model).check_bands(stack.bands)
        arrays = stack.read_all()
        grid = stack.grid
    label_image, values, _ = _labels_on_grid(labels, grid, progress.info, dict(zip(info.class_names, info.class_values))
                                             if labels.vector else None)
    stats = {m: model.band_statistics(m) for m in arrays}
    samples = sampling.make_samples(arrays, label_image, info.class_values, model.cfg.patch_size, stats,
                                    settings.max_samples_per_class, settings.seed)
    samples = samples.subset(np.flatnonzero(samples.available.all(1)))
    if len(samples) == 0:
        raise LvpcError("no labelled pixel of the model's classes has data in every layer")
    train_set, val_set, _ = _split(samples, label_image, info.class_values, info.class_names, model.cfg.patch_size,
                                   settings, progress)
    seed_everything(settings.seed)
    refit = settings.refit and len(val_set) > 0
    fit = train_stage2(model, case, train_set, val_set, settings, progress, (5.0, 50.0 if refit else 95.0))
    if refit:
        progress.info(f"refit: training the prompts again on all {len(samples)} labelled pixels")
        seed_everything(settings.seed)
        train_stage2(model, case, samples, None, settings, progress, (50.0, 95.0))
    result = {"best_epoch": fit.best_epoch, "val_oa": _percent(fit.best_accuracy), "history": fit.history,
              "refit": refit}
    info.report.setdefault("stage2", {})["+".join(case)] = result
    save_model(out_model, model, info)
    progress.set_progress(100.0)
    return {"case": "+".join(case), **result}


def describe(classes: list[str], modalities: list[str], out_path: str,
             inputs: dict[str, str | None] | None = None) -> str:
    """Writes the editable description table (language priors) for the classes and modalities; `inputs` are the
    files the classes came from, which the table must not overwrite."""
    from . import language

    if not classes:
        raise LvpcError("give at least one class name")
    if not modalities:
        raise LvpcError("MODALITIES is empty: choose at least one of hs, lidar, sar.")
    check_modality_names(modalities)
    check_outputs({"OUTPUT": out_path}, inputs or {})
    language.build_descriptions(classes, modalities).save(out_path)
    return out_path
