"""Self-contained HTML reports (inline SVG, no scripts, no external files) of a training run, an evaluation and a
model file.

Plain strings from the dicts that `workflows.train` and `workflows.evaluate` return, so the QGIS algorithms and the
command line write the same report, and a report opens in any browser, offline, years later.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from html import escape

from .files import atomic_output

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 60em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
.big { font-size: 1.4em; }
svg text { font-family: sans-serif; }
"""
# Okabe-Ito: distinguishable for colour-blind readers.
_LINE_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "&ndash;" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"


def line_chart(series: dict[str, Sequence[tuple[float, float]]], title: str, y_label: str,
               width: int = 560, height: int = 260) -> str:
    """An SVG line chart of named (x, y) series with axes, ticks and a legend."""
    points = [p for s in series.values() for p in s if not math.isnan(p[1])]
    if not points:
        return f"<p>{escape(title)}: no data.</p>"
    left, right, top, bottom = 55, 150, 28, 40
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}">',
             f'<text x="{width / 2 - right / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="10">{y:.3g}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10">{x:.0f}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="11">epoch</text>'
                 f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {top + plot_h / 2})">{escape(y_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = _LINE_COLORS[i % len(_LINE_COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values if not math.isnan(y))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{path}"/>'
                     f'<line x1="{width - right + 10}" x2="{width - right + 28}" y1="{top + 8 + 16 * i}" '
                     f'y2="{top + 8 + 16 * i}" stroke="{color}" stroke-width="3"/>'
                     f'<text x="{width - right + 32}" y="{top + 12 + 16 * i}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(matrix: Sequence[Sequence[int]], names: Sequence[str], cell: int = 34) -> str:
    """The confusion matrix as an SVG heat map, shaded by each reference row's share, counts written in the cells."""
    n = len(names)
    label_w = 8 + 7 * max((len(s) for s in names), default=1)
    top = label_w + 20
    width, height = label_w + 20 + n * cell + 10, top + n * cell + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="confusion matrix">',
             f'<text x="{label_w + 20 + n * cell / 2}" y="12" text-anchor="middle" font-size="11">predicted</text>',
             f'<text x="10" y="{top + n * cell / 2}" text-anchor="middle" font-size="11" '
             f'transform="rotate(-90 10 {top + n * cell / 2})">reference</text>']
    for j, name in enumerate(names):
        x = label_w + 20 + j * cell + cell / 2
        parts.append(f'<text x="{x:.1f}" y="{top - 4}" font-size="10" transform="rotate(-60 {x:.1f} {top - 4})">'
                     f'{escape(name)}</text>')
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = top + i * cell
        parts.append(f'<text x="{label_w + 16}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="10">'
                     f'{escape(names[i])}</text>')
        for j, count in enumerate(row):
            share = count / total
            # white -> blue for agreement, white -> vermilion for confusion
            r, g, b = (0, 114, 178) if i == j else (213, 94, 0)
            fill = tuple(round(255 - (255 - c) * share) for c in (r, g, b))
            ink = "#fff" if share > 0.55 else "#000"
            x = label_w + 20 + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb{fill}" stroke="#ccc">'
                         f'<title>{escape(names[i])} &rarr; {escape(names[j])}: {count}</title></rect>'
                         f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" font-size="10" '
                         f'fill="{ink}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def training_report(report: dict, title: str = "LVPC training report") -> str:
    """HTML of `workflows.train`'s result: class counts, loss and accuracy curves, validation accuracy per case."""
    counts = report.get("class_counts", {})
    total = sum(counts.values()) or 1
    body = [f"<p>Modalities: <b>{escape(', '.join(report.get('modalities', [])))}</b>; text encoder "
            f"<b>{escape(str(report.get('text_encoder', '')))}</b>; {report.get('n_train', 0)} training and "
            f"{report.get('n_val', 0)} validation pixels; trained on {escape(str(report.get('device', '')))} in "
            f"{_fmt(report.get('seconds'), 0)} s.</p>",
            _table("Labelled pixels per class", ["class", "pixels", "share %"],
                   [[escape(n), str(c), _fmt(100 * c / total, 1)] for n, c in counts.items()])]
    stage1 = report.get("stage1", {})
    history = stage1.get("history", [])
    body.append(f"<h2>Stage 1: language-guided feature learning</h2><p>Best epoch {stage1.get('best_epoch')}, "
                f"validation OA {_fmt(stage1.get('val_oa'))} %."
                + (" The model in the file was then trained again on every labelled pixel for the whole schedule "
                   "(refit); the validation figures are those of the run that held the validation areas out, an "
                   "honest, slightly pessimistic estimate for it." if report.get("refit") else "") + "</p>")
    body.append(line_chart({"training loss": [(h["epoch"], h["loss"]) for h in history]}, "Stage 1 loss", "loss"))
    body.append(line_chart({"validation OA": [(h["epoch"], 100 * h["val_oa"]) for h in history if "val_oa" in h]},
                           "Stage 1 validation accuracy", "OA %"))
    stage2 = report.get("stage2", {})
    if stage2:
        body.append("<h2>Stage 2: visual prompts for each absence case</h2>")
        body.append(line_chart({f"{case} available": [(h["epoch"], 100 * h["val_oa"]) for h in fit.get("history", [])
                                                      if "val_oa" in h]
                                for case, fit in stage2.items()}, "Stage 2 validation accuracy", "OA %"))
        body.append(_table("Best epoch per absence case", ["available modalities", "best epoch", "validation OA %"],
                           [[escape(c), str(f.get("best_epoch")), _fmt(f.get("val_oa"))] for c, f in stage2.items()]))
    split = report.get("validation_split")
    if split:
        summary = split_summary(split)
        body.append(f"<h2>Validation</h2><p>{escape(summary[0].upper() + summary[1:])}.</p>")
        body.append(_table("Validation split per class", ["class", "held out as", "held out", "validation pixels"],
                           [[escape(n), {"components": "whole areas", "none": "none"}.get(m) or _blocks(split),
                             f"{split['val_groups'][n]} of {split['groups'][n]}", str(split["val_pixels"][n])]
                            for n, m in split["method"].items()]))
    validation = report.get("validation", {})
    if validation:
        modalities = report.get("modalities", [])
        rows = []
        for key, oa in validation.items():
            case, fill, missing = _case(key, modalities)
            rows.append([escape(case), "all present" if not missing
                         else ("learned prompts" if fill == "prompts" else "zero-filled (ablation)"), _fmt(oa)])
        basis = (f" ({report.get('n_val', 0)} pixels in {_held_out(split)}, spatially separate from training)"
                 if split else "")
        body.append(_table(f"Validation accuracy by available modalities{basis}",
                           ["available", "missing modalities as", "OA %"], rows))
    settings = report.get("settings", {})
    if settings:
        body.append(_table("Settings", ["setting", "value"], [[escape(k), escape(str(v))] for k, v in settings.items()]))
    return _page(title, "\n".join(body))


def split_summary(split: dict) -> str:
    """How the validation pixels were chosen (`ValidationSplit.to_dict`), in one sentence: the log and the report."""
    n = sum(split["val_pixels"].values())
    if not n:
        return ("no validation pixels (validation fraction 0 or too few labelled pixels): "
                "the model of the last epoch is kept")
    held = [f"{name}: {split['val_groups'][name]} of {split['groups'][name]} "
            + ("areas" if method == "components" else _blocks(split))
            for name, method in split["method"].items() if method != "none"]
    parts = [f"validation on whole ROI areas (polygons or connected patches of a class), spatially separate from "
             f"training: {', '.join(held)}; {n} pixels"]
    none = [name for name, method in split["method"].items() if method == "none"]
    if none:
        parts.append(f"no validation pixels of {', '.join(none)} (fewer than 3 pixels or a single block)")
    if split["dropped_by_gap"]:
        parts.append(f"{split['dropped_by_gap']} training pixels within half a window of them left out of the "
                     "validated run")
    kept = [name for name, count in split["kept_in_gap"].items() if count]
    if kept:
        parts.append(f"the training pixels of {', '.join(kept)} all lie within half a window of validation pixels "
                     "and are used anyway")
    return "; ".join(parts)


def validation_lines(report: dict) -> list[str]:
    """Validation OA of every absence case with the pixels and held-out areas it rests on (the end of the log)."""
    split = report.get("validation_split")
    basis = f", {report.get('n_val', 0)} pixels in {_held_out(split)}" if split else ""
    lines = []
    for key, oa in report.get("validation", {}).items():
        case, fill, missing = _case(key, report.get("modalities", []))
        how = ("all present" if not missing else
               f"{'+'.join(missing)} {'from learned prompts' if fill == 'prompts' else 'zero-filled, an ablation'}")
        lines.append(f"validation OA {oa:.1f} % with {case} [{how}]{basis}")
    return lines


def _case(key: str, modalities: Sequence[str]) -> tuple[str, str, list[str]]:
    """A `validation` key ("lidar|prompts") as its available modalities, fill and missing modalities."""
    case, _, fill = key.partition("|")
    return case, fill, [m for m in modalities if m not in case.split("+")]


def _blocks(split: dict) -> str:
    return f"blocks of {split['block_size']} x {split['block_size']} pixels (a single area)"


def _held_out(split: dict) -> str:
    """The held-out groups, counted: "5 held-out areas", "2 held-out areas and 1 block"."""
    count = {kind: sum(g for n, g in split["val_groups"].items() if split["method"][n] == kind)
             for kind in ("components", "blocks")}
    areas, blocks = count["components"], count["blocks"]
    words = [f"{areas} held-out area{'s' * (areas != 1)}"] if areas or not blocks else []
    words += [f"{blocks} {'' if words else 'held-out '}block{'s' * (blocks != 1)}"] if blocks else []
    return " and ".join(words)


def evaluation_report(result: dict, title: str = "LVPC accuracy assessment") -> str:
    """HTML of `workflows.evaluate`'s result: OA, AA, kappa, per-class accuracies, confusion matrix table and heat map,
    and, for a class map, Olofsson et al.'s area table and area-proportion matrix."""
    names = result["class_names"]
    matrix = result["confusion"]
    fill = result.get("fill", "prompts")
    source = (f" on the class map <b>{escape(str(result['map']))}</b>" if result.get("map") else
              f"; available modalities: <b>{escape(', '.join(result.get('modalities', [])))}</b>"
              f" (missing ones {'compensated by learned prompts' if fill == 'prompts' else 'zero-filled'})")
    unscored = result.get("unclassified_reference_pixels")
    why = "lie on unclassified (nodata) pixels of the map" if result.get("map") else "had no data in any layer"
    body = [f"<p class=\"big\">OA <b>{_fmt(result['oa'])} %</b> &middot; AA <b>{_fmt(result['aa'])} %</b> &middot; "
            f"kappa <b>{_fmt(result['kappa'])}</b> (&times;100)</p>",
            f"<p>{result['n']} reference pixels{source}."
            + (f" {unscored} reference pixels {why} and are not scored." if unscored else "") + "</p>",
            _table("Per-class accuracy of the sample", ["class", "reference pixels", "producer's accuracy %",
                                                        "user's accuracy %", "F1 %"],
                   [[escape(n), str(c["reference_pixels"]), _fmt(c["producers_accuracy"]), _fmt(c["users_accuracy"]),
                     _fmt(c.get("f1"))] for n, c in result["per_class"].items()]),
            _table("Confusion matrix (rows: reference, columns: predicted)", ["", *(escape(n) for n in names), "total"],
                   [[f"<b>{escape(n)}</b>", *(str(v) for v in row), str(sum(row))] for n, row in zip(names, matrix)]),
            confusion_svg(matrix, names),
            _area_section(result.get("area_adjusted"), names)]
    return _page(title, "\n".join(body))


NOT_RECORDED = "not recorded (a model trained before LVPC kept it)"


def model_report(info: dict, title: str = "LVPC model") -> str:
    """HTML of `workflows.model_information`: classes with their colours, sensors and bands, training grid, absence
    cases with their validation accuracy, network and training settings, text encoder, versions, date."""
    grid = info["grid"]
    body = [f"<p><b>{escape(info['model'])}</b>: {info['summary']['n_classes']} classes, modalities "
            f"<b>{escape(', '.join(m['name'] for m in info['modalities']))}</b>, text encoder "
            f"<b>{escape(info['text_encoder'])}</b>; {escape(_trained(info['created']))}.</p>",
            _table("Classes", ["code", "name", "colour"],
                   [[str(c["value"]), escape(c["name"]),
                     f'<span style="display:inline-block;width:2em;background:{c["color"]}">&nbsp;</span> '
                     f'{c["color"]}'] for c in info["classes"]]),
            _table("Sensors", ["modality", "bands", "training layer", "band names", "wavelengths"],
                   [[escape(m["name"]), str(m["bands"]), escape(m["file"] or NOT_RECORDED),
                     ", ".join(escape(n) if n else "&ndash;" for n in m["band_names"] or []) or "&ndash;",
                     escape(", ".join(f"{w:g}" for w in m["wavelengths"]) + f" {m['wavelength_units']}")
                     if m["wavelengths"] else "&ndash;"] for m in info["modalities"]])]
    if grid:
        body.append(_table("Training grid", ["", "value"], [
            ["CRS", escape(grid["crs"])], ["size", f"{grid['width']} x {grid['height']} pixels"],
            ["pixel size", f"{info['summary']['pixel_size']:g} {escape(grid['units'])}"],
            ["origin (upper left)", f"{grid['geotransform'][0]:.10g}, {grid['geotransform'][3]:.10g}"]]))
    else:
        body.append(f"<p>Training grid: {NOT_RECORDED}.</p>")
    body.append(_table("Validation accuracy by absence case (missing modalities from learned prompts)",
                       ["available", "missing", "validation OA %", "zero-filled OA % (ablation)", "best epoch"],
                       [[escape(" + ".join(m["name"] for m in info["modalities"])), "none",
                         _fmt(info["validation_oa"]), "&ndash;", "&ndash;"]]
                       + [[escape(c["name"]), escape(", ".join(c["missing"])), _fmt(c["validation_oa"]),
                           _fmt(c["validation_oa_zero_filled"]),
                           "&ndash;" if c["best_epoch"] is None else str(c["best_epoch"])]
                          for c in info["cases"]]))
    for caption, values in (("Training settings", info["settings"]), ("Network", info["network"]),
                            ("Training run", info["training"]), ("Library versions", info["versions"])):
        if values:
            body.append(_table(caption, ["setting", "value"], [[escape(k), escape(str(v))] for k, v in values.items()]))
        else:
            body.append(f"<p>{caption}: {NOT_RECORDED}.</p>")
    return _page(title, "\n".join(body))


def model_summary(info: dict) -> str:
    """`workflows.model_information` as a few lines of text, what `python -m lvpcnet_core info` prints."""
    summary, grid = info["summary"], info["grid"]
    lines = [f"model {info['model']} (format {info['format_version']}), {_trained(info['created'])}",
             f"classes ({summary['n_classes']}): " + ", ".join(f"{c['value']} {c['name']} {c['color']}"
                                                            for c in info["classes"])]
    for m in info["modalities"]:
        layer = (f" from {m['file']}; band names: {', '.join(n or '-' for n in m['band_names'])}" if m["file"]
                 else f"; training layer {NOT_RECORDED}")
        lines.append(f"sensor {m['name']}: {m['bands']} band{'s' * (m['bands'] != 1)}{layer}")
    lines.append(f"training grid: {grid['width']} x {grid['height']} pixels of {summary['pixel_size']:g} "
                 f"{grid['units']}, {grid['crs']}, origin {grid['geotransform'][0]:.10g}, {grid['geotransform'][3]:.10g}"
                 if grid else f"training grid: {NOT_RECORDED}")
    lines.append(f"validation OA with every sensor: {_text(info['validation_oa'])}")
    for c in info["cases"]:
        lines.append(f"absence case {c['name']} (missing {', '.join(c['missing'])}): validation OA "
                     f"{_text(c['validation_oa'])} with learned prompts, {_text(c['validation_oa_zero_filled'])} "
                     "zero-filled")
    lines.append(f"text encoder: {info['text_encoder']}")
    if info["settings"]:
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
    lines.append("versions: " + (", ".join(f"{k} {v}" for k, v in info["versions"].items()) if info["versions"]
                                 else NOT_RECORDED))
    return "\n".join(lines)


def _trained(created: str | None) -> str:
    return f"trained {created}" if created else f"training date {NOT_RECORDED}"


def _text(oa: float | None) -> str:
    return "not measured" if oa is None else f"{oa:.1f} %"


def _area_section(area: dict | None, names: Sequence[str]) -> str:
    """Olofsson et al. (2014): the area table and the estimated area proportions; or why there are none."""
    heading = "<h2>Area-adjusted accuracy and class areas (Olofsson et al. 2014)</h2>"
    if area is None:
        return (f"{heading}<p>Not computed: the estimated class areas and the area-adjusted accuracies weigh the "
                "reference sample by the mapped area of each class, so they need the class map. Classify the scene "
                "(<i>lvpc:classify</i>) and evaluate that map (MAP) to get them.</p>")
    per_class = area["per_class"]
    unit = area.get("area_unit")
    size = "area_pixels" if unit is None else "area"
    shown = unit or "pixels"
    oa = area["overall_accuracy"]
    parts = [heading,
             f"<p class=\"big\">OA <b>{_pm(oa)} %</b> (area-weighted, 95 % confidence interval)</p>",
             "<p>Strata are the map classes, weighted by their share of the map's classified pixels; the reference "
             "pixels count as a stratified random sample of them and the intervals are &plusmn; 1.96 standard errors. "
             "That holds for a probability sample (random points in each map class); reference polygons drawn by "
             "hand are not one, and their neighbouring pixels are not independent: then the intervals are too "
             "narrow and the figures indicative only."
             + ("" if unit else " The map has no projected CRS, so areas are given in pixels.") + "</p>"]
    if area.get("unsampled_map_classes"):
        parts.append(f"<p>The map classes {escape(', '.join(area['unsampled_map_classes']))} have no reference "
                     "pixel: figures that depend on them are n/a. Add reference pixels in every map class.</p>")
    rows = []
    for name in names:
        c = per_class[name]
        map_area = c["map_area"] if unit else c["map_pixels"]
        rows.append([escape(name), str(c["map_pixels"]), _fmt(map_area, 2 if unit else 0), _pm(c[size], 2),
                     _pm(c["users_accuracy"]), _pm(c["producers_accuracy"]), _pm(c["f1"])])
    parts.append(_table("Class areas and accuracies (estimate &plusmn; 95 % CI)",
                        ["class", "map pixels", f"map area ({escape(shown)})", f"estimated area ({escape(shown)})",
                         "user's accuracy %", "producer's accuracy %", "F1 %"], rows))
    proportions = area["proportions"]
    totals = [sum(r[j] for r in proportions if r is not None) if all(r is not None for r in proportions) else None
              for j in range(len(names))]
    parts.append(_table("Estimated area proportions p<sub>ij</sub> (rows: map class, columns: reference class)",
                        ["", *(escape(n) for n in names), "total"],
                        [[f"<b>{escape(n)}</b>", *((_fmt(v, 4) for v in row) if row is not None else
                                                    ["n/a"] * len(names)),
                          _fmt(sum(row), 4) if row is not None else "n/a"] for n, row in zip(names, proportions)]
                        + [["<b>total</b>", *(_fmt(t, 4) if t is not None else "n/a" for t in totals),
                            _fmt(sum(totals), 4) if None not in totals else "n/a"]]))
    return "".join(parts)


def _pm(estimate: dict, digits: int = 2) -> str:
    """An `accuracy.Estimate.to_dict()` as "value &plusmn; half-width", "n/a" where the sample cannot give it."""
    if estimate["estimate"] is None:
        return "n/a"
    ci = "n/a" if estimate["ci95"] is None else f"{estimate['ci95']:.{digits}f}"
    return f"{estimate['estimate']:.{digits}f} &plusmn; {ci}"


def write_html(path: str | os.PathLike, html: str, parameter: str = "REPORT") -> None:
    """Written atomically, so a failed run leaves no half report."""
    with atomic_output(path, parameter) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(html)
