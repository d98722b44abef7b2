"""The jobs of LVPC, as the command line and the QGIS algorithms call them.

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

from .errors import LvpcError
from .files import check_outputs
from .limits import check_modality_names, check_options
from .progress import Progress, SilentProgress, check_cancel

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
                    ) -> tuple[np.ndarray, list[int], list[str], dict[int, tuple[int, int, int]]]:
    """Label image on the grid, class codes, names and the colours the labels carry; `known` maps a model's class
    keys (what a ROI field holds) to codes.

    A ROI field's values are its classes' names; a label raster's classes are named by its legend (category names,
    attribute table, a .qml beside it), else `class <code>`."""
    from . import raster_io

    if source.vector:
        return (*raster_io.rasterize_rois(source.vector, source.class_field, grid, layer=source.layer,
                                          class_values=known, log=log), {})
    labels = raster_io.read_labels(source.raster, grid, log=log)
    values = [int(v) for v in np.unique(labels) if v != 0]
    legend = raster_io.label_legend(source.raster)
    names = [legend.get(v, (None, None))[0] or f"class {v}" for v in values]
    colors = {v: legend[v][1] for v in values if v in legend and legend[v][1] is not None}
    return labels, values, names, colors


def _lattice(info):
    """The pixels a model's maps are made on: its training grid (None for models that did not record it)."""
    from .raster_io import Grid

    return Grid.from_dict(info.grid) if info.grid else None


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

    from . import distributed, language, raster_io, text_encoders
    from . import report as html
    from .model_file import ModelInfo, library_versions, save_model, utc_now
    from .training import TrainSettings, resolve_device

    progress = progress or SilentProgress()
    settings = settings or TrainSettings()
    if len(modalities) < 2:
        raise LvpcError(f"training needs at least two modalities (HS, LIDAR, SAR), got {len(modalities)}: "
                        "add a second layer, or use a single-modality classifier instead")
    check_modality_names(modalities)
    check_options(settings.to_dict())
    distributed.check_batch_size(settings.batch_size)   # before the layers are read, not at the first batch
    check_outputs({"OUTPUT_MODEL": out_model, "REPORT": report_path},
                  {**_layers(modalities), **labels.inputs(), "DESCRIPTIONS": descriptions})
    resolve_device(settings.device)
    started = time.perf_counter()
    with raster_io.gdal_cache_limit(), raster_io.AlignedStack(modalities, log=progress.info) as stack:
        grid = stack.grid
        layers = stack.describe()
        label_image, values, keys, carried = _labels_on_grid(labels, grid, progress.info)
        names = [class_names.get(v, n) for v, n in zip(values, keys)] if class_names else keys
        colors = {**carried, **(colors or {})}
        palette = [tuple(colors.get(v, c)) for v, c in zip(values, raster_io.default_colors(len(values)))]
        order = list(modalities)
        table = (language.DescriptionTable.load(descriptions) if descriptions
                 else language.build_descriptions(names, order, log=progress.info))
        table = table.validate(names, order)
        # the v1 ablation (no language) must not depend on a text encoder in any way: none is loaded
        encoder = text_encoders.load_text_encoder(text_encoder, log=progress.info) if settings.language else None
        model, report = fit_arrays(stack, label_image, values, names, table, encoder, settings, progress)
    report.update(seconds=time.perf_counter() - started, grid={"width": grid.width, "height": grid.height})
    info = ModelInfo(values, names, palette, table.to_dict(), report["text_encoder"], report, grid=grid.to_dict(),
                     layers=layers, versions=library_versions(), created=utc_now(), class_keys=keys)
    distributed.barrier()   # every rank got here: a rank that failed leaves no model behind
    if distributed.is_main():
        save_model(out_model, model, info)
        progress.set_progress(100.0)
        progress.info(f"model written to {out_model} ({report['seconds']:.0f} s)")
        if report_path:
            html.write_html(report_path, html.training_report(report))
            progress.info(f"training report written to {report_path}")
    return report


def fit_arrays(layers, label_image: np.ndarray, values: list[int], names: list[str], table,
               encoder, settings, progress: Progress):
    """Samples -> trained LVPCNet (stage 1, then every absence case) from co-registered layers: a raster stack
    (read only around the labelled pixels) or in-memory arrays.

    The core of `train`, also used by the benchmarks on datasets that come as arrays (.mat, .npy).
    One modality is allowed here (the single-modality baselines); it then has no absence cases.
    """
    import torch

    from . import distributed, raster_io, sampling, text_encoders
    from .encoders import ModelConfig
    from .network import PROTOTYPE_DIM, absence_cases
    from .report import validation_lines
    from .training import resolve_device

    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device, log=progress.info)
    if len(values) < 2:
        raise LvpcError("the training labels hold only one class; LVPC needs at least two classes to learn")
    stack = raster_io.as_stack(layers)
    stats = {m: sampling.scene_statistics(stack, m, seed=settings.seed) for m in stack.names}
    samples = sampling.make_samples(stack, label_image, values, settings.patch_size, stats,
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
    order = stack.names
    if (encoder is None) == settings.language:
        raise ValueError("a text encoder is needed exactly when training with language priors")
    texts = text_encoders.encode_descriptions(table, encoder) if encoder is not None else None
    check_cancel(progress)

    cfg = ModelConfig(modalities=order, bands=dict(stack.bands), n_classes=len(values),
                      text_dim=encoder.dim if encoder is not None else PROTOTYPE_DIM, patch_size=settings.patch_size,
                      token_grid=settings.token_grid, stem_depth=settings.stem_depth, stem_width=settings.stem_width,
                      band_reduction=settings.band_reduction,
                      width=settings.width, depth=settings.depth, heads=settings.heads,
                      prompt_length=settings.prompt_length, extra=settings.ablation())
    progress.info(f"training on {device.type}: {len(train_set)} training and {len(val_set)} validation pixels, "
                  f"{len(values)} classes, modalities {', '.join(order)}")
    if settings.samples_per_epoch and len(samples) > settings.samples_per_epoch:
        progress.info(f"each epoch draws {settings.samples_per_epoch} of the labelled pixels afresh, so that more "
                      "pixels do not make an epoch longer (--samples-per-epoch on the command line)")
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
        "settings": settings.to_dict(), "device": device.type, "processes": distributed.world_size(),
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

    from .network import build_network
    from .training import seed_everything

    seed_everything(seed)
    model = build_network(cfg)
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
             probabilities: str | None = None,
             extent: tuple[float, float, float, float] | None = None, mask: str | None = None, device: str = "auto",
             block_size: int = 256, fill: str = "prompts", threads: int | None = None,
             progress: Progress | None = None, shard: bool = True) -> dict:
    """Model + any subset of its modalities -> classified GeoTIFF (+ confidence, + one probability band per class),
    block by block.

    In a distributed run (`shard`) the ranks split the blocks and rank 0 writes the one map (`_classify_sharded`);
    `classify_scenes` gives each rank whole scenes instead (`shard=False`)."""
    import torch

    from . import distributed, raster_io
    from .compatibility import ModelLayers
    from .model_file import load_model
    from .predict import ScenePredictor, classify_scene
    from .training import resolve_device

    progress = progress or SilentProgress()
    check_options({"block_size": block_size, "threads": threads})
    extras = {"CONFIDENCE": confidence, "OUTPUT_PROBABILITIES": probabilities}
    check_outputs({"OUTPUT": out_map, **extras}, {"MODEL": model_path, **_layers(modalities), "MASK": mask},
                  sidecars={"OUTPUT": raster_io.ClassMapWriter.sidecars(out_map, style=True),
                            **{k: raster_io.ClassMapWriter.sidecars(v, style=False) for k, v in extras.items() if v}})
    if threads:
        torch.set_num_threads(threads)
    model, info = load_model(model_path, resolve_device(device, log=progress.info))
    expects = ModelLayers.of_model(model, info)
    available = expects.available(modalities, fill)
    started = time.perf_counter()
    ordered = {m: modalities[m] for m in available}
    with raster_io.gdal_cache_limit(), raster_io.AlignedStack(ordered, extent=extent, log=progress.info,
                                                                         lattice=_lattice(info)) as stack:
        expects.check_bands(stack.bands)
        grid = stack.grid
        mask_reader = raster_io.read_mask(mask, grid) if mask else None
        progress.info(f"classifying {grid.width} x {grid.height} pixels with {', '.join(available)}"
                      + ("" if len(available) == len(model.cfg.modalities) else
                         f" ({'learned prompts' if fill == 'prompts' else 'zero-filled'} for the missing modalities)"))
        predictor = ScenePredictor(model, info.class_values, fill=fill, log=progress.info)
        window = (lambda x, y, w, h: mask_reader[y:y + h, x:x + w]) if mask_reader is not None else None

        def writer() -> raster_io.ClassMapWriter:
            return raster_io.ClassMapWriter(out_map, grid, info.class_values, info.class_names, info.colors,
                                            confidence_path=confidence, probabilities_path=probabilities)

        if shard and distributed.active():
            cases = _classify_sharded(predictor, stack, grid, writer, out_map, progress, block_size, window,
                                      probabilities is not None)
        else:
            with writer() as out:
                cases = classify_scene(
                    predictor, stack, grid.width, grid.height,
                    lambda b: out.write(b.xoff, b.yoff, b.classes, b.confidence if confidence else None,
                                        b.probabilities if probabilities else None),
                    progress, block_size, mask=window)
    seconds = time.perf_counter() - started
    pixels = grid.width * grid.height
    summary = {"output": out_map, "confidence": confidence, "probabilities": probabilities, "width": grid.width,
               "height": grid.height, "seconds": seconds, "pixels_per_second": pixels / seconds if seconds else None,
               "pixels_per_case": {"+".join(c): n for c, n in cases.items()}}
    for case, n in cases.items():
        progress.info(f"{n} pixels classified with {'+'.join(case)}")
    progress.info(f"map written to {out_map} ({pixels / seconds:.0f} pixels/s)")
    return summary


def _classify_sharded(predictor, stack, grid, writer, out_map: str, progress: Progress, block_size: int,
                      window, probabilities: bool) -> dict[tuple[str, ...], int]:
    """Block i classified by rank i % world into that rank's temporary part (class codes, confidence and, when asked
    for, the class probabilities; full grid, sparse); rank 0 then writes every block, in the single-process order,
    through the same `ClassMapWriter`, so the map is byte-identical to one process's. Every surviving rank deletes
    all the parts, whatever happened."""
    from . import distributed
    from .files import discard
    from .predict import blocks, classify_scene

    todo = list(blocks(grid.width, grid.height, block_size))
    parts = distributed.part_paths(out_map)
    try:
        part = np.lib.format.open_memmap(parts[1 + distributed.rank()], "w+", np.float32,
                                         (2 + len(predictor.codes) * probabilities, grid.height, grid.width))

        def keep(b) -> None:
            rows, cols = b.classes.shape
            part[0, b.yoff:b.yoff + rows, b.xoff:b.xoff + cols] = b.classes
            part[1, b.yoff:b.yoff + rows, b.xoff:b.xoff + cols] = b.confidence
            if probabilities:
                part[2:, b.yoff:b.yoff + rows, b.xoff:b.xoff + cols] = b.probabilities

        cases = classify_scene(predictor, stack, grid.width, grid.height, keep, progress, block_size, mask=window,
                               todo=distributed.mine(todo))
        part.flush()
        del part
        totals: dict[tuple[str, ...], int] = {}
        for counts in distributed.all_objects(cases):   # also: every part is complete
            for case, n in counts.items():
                totals[case] = totals.get(case, 0) + n
        if distributed.is_main():
            done = [np.load(p, mmap_mode="r") for p in parts[1:]]
            with writer() as out:
                for i, (xoff, yoff, xs, ys) in enumerate(todo):
                    block = done[i % len(done)][:, yoff:yoff + ys, xoff:xoff + xs]
                    out.write(xoff, yoff, block[0].astype(np.uint8), block[1] if out.confidence_path else None,
                              block[2:] if probabilities else None)
            del done
        distributed.barrier()   # the map is published before any rank reports success
    finally:
        discard(parts)
    return totals


def classify_scenes(model_path: str, table: str, **options) -> list[dict]:
    """Every scene of a scene table (`read_scene_table`) classified with one model; in a distributed run scene i
    goes to rank i % world (each scene whole, by one rank). The summaries of all scenes, in table order."""
    from . import distributed

    scenes = read_scene_table(table)
    done = [(i, classify(model_path, layers, out, confidence=conf, shard=False, **options))
            for i, (layers, out, conf) in distributed.mine(list(enumerate(scenes)))]
    return [summary for _, summary in sorted((pair for ranks in distributed.all_objects(done) for pair in ranks),
                                             key=lambda pair: pair[0])]


def read_scene_table(path: str) -> list[tuple[dict[str, str], str, str | None]]:
    """A CSV with a header row: one column per modality (hs, lidar, sar...; an empty cell = that layer is missing in
    that scene), `output` (the map) and optionally `confidence`; relative paths are relative to the table's folder.
    Returns (modality -> path, output, confidence) per row."""
    import csv
    from pathlib import Path

    folder = Path(path).resolve().parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise LvpcError(f"SCENES: cannot read '{path}' ({exc.strerror}); give a CSV file of scenes") from None
    columns = list(rows[0]) if rows else []
    if "output" not in columns:
        raise LvpcError(f"SCENES: '{path}' needs a header row with an 'output' column and one column per modality "
                        f"(e.g. hs,lidar,output), got {','.join(c for c in columns if c) or 'no rows'}")

    def where(text: str) -> str:
        return str(folder / text.strip())

    scenes, outputs = [], set()
    for n, row in enumerate(rows, start=2):
        if None in row or None in row.values() or not row["output"].strip():
            raise LvpcError(f"SCENES: line {n} of '{path}' has the wrong number of cells or no output; give one "
                            "cell per column")
        layers = {m.strip().lower(): where(p) for m, p in row.items()
                  if m not in ("output", "confidence") and p.strip()}
        check_modality_names(layers)
        out, conf = where(row["output"]), where(row["confidence"]) if (row.get("confidence") or "").strip() else None
        if out in outputs:
            raise LvpcError(f"SCENES: line {n} of '{path}' writes {out} again; give each scene its own output")
        outputs.add(out)
        scenes.append((layers, out, conf))
    return scenes


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
    expects = ModelLayers.of_model(model, info)
    available = expects.available(modalities, fill)
    ordered = {m: modalities[m] for m in available}
    with raster_io.gdal_cache_limit(), raster_io.AlignedStack(ordered, log=progress.info,
                                                              lattice=_lattice(info)) as stack:
        expects.check_bands(stack.bands)
        known = dict(zip(info.keys(), info.class_values))
        label_image, values, _, _ = _labels_on_grid(reference, stack.grid, progress.info,
                                                    known if reference.vector else None)
        foreign = sorted(set(values) - set(info.class_values))
        if foreign:
            progress.info(f"reference classes {foreign} are not classes of the model and are ignored")
        absent = [n for n, v in zip(info.class_names, info.class_values) if v not in values]
        if absent:
            progress.info(f"the reference has no pixel of the model's classes {absent}")
        result = evaluate_arrays(model, info.class_values, info.class_names, stack, label_image, fill, progress)
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
    label_image, values, reference_names, _ = _labels_on_grid(reference, grid, progress.info, known)
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


def evaluate_arrays(model, class_values: list[int], class_names: list[str], layers, label_image: np.ndarray,
                    fill: str = "prompts", progress: Progress | None = None, chunk: int = 20000) -> dict:
    """Metrics at the labelled pixels of a raster stack or in-memory arrays; each pixel uses the case of its valid
    modalities.

    Windows are cut `chunk` pixels at a time, tile by tile, so a reference map of millions of pixels fits in memory."""
    import torch

    from . import metrics, raster_io, sampling
    from .training import predict_logits

    progress = progress or SilentProgress()
    stack = raster_io.as_stack(layers)
    stats = {m: model.band_statistics(m) for m in stack.names}
    rows, cols, reference = sampling.labelled_pixels(label_image, class_values, None, 0)
    if len(rows) == 0:
        raise LvpcError("no reference pixel of the model's classes lies inside the layers; check the reference labels")
    order = sampling.tile_order(rows, cols)
    rows, cols, reference = rows[order], cols[order], reference[order]
    predicted = np.full(len(rows), -1)
    names = stack.names
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        samples = sampling.make_samples_at(stack, rows[part], cols[part], reference[part], model.cfg.patch_size, stats)
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
    from . import distributed, raster_io, sampling
    from .compatibility import ModelLayers
    from .model_file import load_model, save_model
    from .training import TrainSettings, resolve_device, seed_everything, train_stage2

    progress = progress or SilentProgress()
    settings = settings or TrainSettings()
    check_options(settings.to_dict())
    distributed.check_batch_size(settings.batch_size)
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
    with raster_io.gdal_cache_limit(), raster_io.AlignedStack({m: modalities[m] for m in model.cfg.modalities},
                                                              log=progress.info, lattice=_lattice(info)) as stack:
        ModelLayers.of_model(model, info).check_bands(stack.bands)
        label_image, values, _, _ = _labels_on_grid(labels, stack.grid, progress.info,
                                                    dict(zip(info.keys(), info.class_values))
                                                    if labels.vector else None)
        stats = {m: model.band_statistics(m) for m in stack.names}
        samples = sampling.make_samples(stack, label_image, info.class_values, model.cfg.patch_size, stats,
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
    distributed.barrier()
    if distributed.is_main():
        save_model(out_model, model, info)
    progress.set_progress(100.0)
    return {"case": "+".join(case), **result}


def export_onnx(model_path: str, out_path: str, available: list[str] | None = None, *, tile_size: int | None = None,
                progress: Progress | None = None) -> dict:
    """One absence case of a model (default: all its modalities) as an ONNX graph of whole blocks, for ONNX Runtime
    and tools such as the QGIS plugin Deepness (onnx_export.py says what the graph takes and gives)."""
    from . import onnx_export
    from .compatibility import ModelLayers
    from .model_file import load_model, read_metadata

    progress = progress or SilentProgress()
    check_options({"tile_size": tile_size})
    check_outputs({"OUTPUT": out_path}, {"MODEL": model_path})
    expects = ModelLayers.of_metadata(read_metadata(model_path))
    given = list(available or expects.modalities)
    unknown = [m for m in given if m not in expects.modalities]
    if unknown or len(set(given)) != len(given):
        raise LvpcError(f"AVAILABLE (--available) must name distinct modalities of the model "
                        f"({', '.join(expects.modalities)}), got {', '.join(given)}")
    case = expects.available(given)   # refuses a case the model has no prompts for
    onnx_export.require_onnx()
    model, info = load_model(model_path)
    progress.info(f"exporting the case {'+'.join(case)}: input 'bands' = "
                  + ", then ".join(f"{m} ({expects.bands[m]} band{'s' if expects.bands[m] > 1 else ''})" for m in case)
                  + f", {f'{tile_size} x {tile_size}' if tile_size else 'any size'}")
    started = time.perf_counter()
    meta = onnx_export.export(model, case, out_path, info, tile_size)
    progress.set_progress(100.0)
    return {"onnx": out_path, "available": list(case), "bands": {m: expects.bands[m] for m in case},
            "tile_size": tile_size, "tiles_overlap_percent": json.loads(meta["tiles_overlap"]),
            "seconds": round(time.perf_counter() - started, 1)}


def model_information(model_path: str, *, json_path: str | None = None, html_path: str | None = None) -> dict:
    """What a model file holds, read from its metadata alone (no weights, no network, nothing downloaded): classes
    and colours, sensors and bands, training grid, absence cases with their validation accuracy, settings, text
    encoder, library versions and training date; optionally as JSON and HTML. Keys a model trained before they were
    recorded lacks are None."""
    import math

    from . import report as html
    from .model_file import read_metadata
    from .prompts import parse_case_key

    check_outputs({"OUTPUT_JSON": json_path, "OUTPUT_HTML": html_path}, {"MODEL": model_path})
    meta = read_metadata(model_path)
    config, report = meta["config"], meta.get("report", {})
    validation, stage2 = report.get("validation", {}), report.get("stage2", {})
    cases: dict[str, dict] = {}
    for key in meta["cases"]:
        available, missing = parse_case_key(key)
        name = "+".join(available)
        cases.setdefault(name, {"available": list(available), "missing": []})["missing"].append(missing)
    for name, case in cases.items():
        fit = stage2.get(name, {})
        # a case added by learn_prompts has no entry in `validation`: its best epoch's accuracy is the same measure
        case.update(validation_oa=validation.get(f"{name}|prompts", fit.get("val_oa")),
                    validation_oa_zero_filled=validation.get(f"{name}|zeros"), best_epoch=fit.get("best_epoch"))
    grid = meta.get("grid") or None
    scored = [(case["validation_oa"], name) for name, case in cases.items() if case["validation_oa"] is not None]
    best, worst = (max(scored), min(scored)) if scored else ((None, None), (None, None))
    layers = meta.get("layers", {})
    info = {
        "model": os.path.basename(model_path), "format_version": meta["format_version"],
        "classes": [{"value": v, "name": n, "color": "#{:02x}{:02x}{:02x}".format(*c)}
                    for v, n, c in zip(meta["class_values"], meta["class_names"], meta["colors"])],
        "modalities": [{"name": m, "bands": config["bands"][m], "file": layers.get(m, {}).get("file"),
                        "band_names": layers.get(m, {}).get("band_names"),
                        "wavelengths": layers.get(m, {}).get("wavelengths"),
                        "wavelength_units": layers.get(m, {}).get("wavelength_units")} for m in config["modalities"]],
        "grid": grid,
        "validation_oa": validation.get(f"{'+'.join(config['modalities'])}|prompts",
                                        report.get("stage1", {}).get("val_oa")),
        "cases": [{"name": name, **case} for name, case in cases.items()],
        "text_encoder": meta["text_encoder"],
        "settings": report.get("settings") or None,
        "network": {k: v for k, v in config.items() if k not in ("modalities", "bands", "n_classes")},
        "training": {k: report[k] for k in ("n_train", "n_val", "class_counts", "device", "refit", "seconds")
                     if k in report} or None,
        "versions": meta.get("versions") or None,
        "created": meta.get("created") or None,
    }
    info["summary"] = {
        "n_classes": len(info["classes"]), "n_modalities": len(config["modalities"]), "n_cases": len(cases),
        "pixel_size": math.sqrt(abs(grid["geotransform"][1] * grid["geotransform"][5])) if grid else None,
        "validation_oa": info["validation_oa"], "best_case": best[1], "best_case_oa": best[0],
        "worst_case": worst[1], "worst_case_oa": worst[0]}
    if json_path:
        write_json(json_path, info)
    if html_path:
        html.write_html(html_path, html.model_report(info), "OUTPUT_HTML")
    return info


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
