"""Accuracy benchmark in the layout of the paper's Table 1: methods x test modality sets, OA / AA / kappa.

    python -m bench.accuracy --dataset slovenia --data ../shared/data/slovenia --seeds 0 1 2

Every (method, seed) run is cached as JSON under `<out>/runs/<name>/` (`--name`, default the dataset), so an
interrupted benchmark continues where it stopped (a cached run is reused only when its settings match). The
table is rebuilt from the cache:
`<out>/<name>.md` and `<out>/<name>.json`.

Methods (rows). All models of the LVPC engine use the same settings, training pixels and seed:
- `<m>-net`: single-modality model, trained and tested on modality m only (its stage 1 alone).
- `LVPC`: the full model; missing modalities compensated by the learned prompts (stage 2).
- `vp1 zero-fill`: the same trained model, missing modalities zero-filled (no prompts).
- `vp2 reconstruction`: stage 2 learns a small CNN per case that rebuilds the missing input (no prompts).
- `v1 no language`: learnable class prototypes instead of text features, with prompts.
- `vf no decoupling`: one encoder per modality instead of the shared + specific pair, with prompts.
- `modality dropout`: stage 1 zeroes a random modality of 30 % of the samples; tested zero-filled.

Baselines a user would try (`bench/baselines.py`), each retrained per test set on exactly its modalities (one model
per column, i.e. it knows in advance which modality will be missing), on LVPC's training pixels (none held out):
- `RandomForest centre pixel` (`rf`): scikit-learn, 200 trees, the centre pixel's values.
- `RandomForest 5 x 5 window` (`rf_window`): the same forest on every band's flattened 5 x 5 neighbourhood.
- `small CNN` (`cnn`): 3 conv layers on the stacked 11 x 11 windows, `--cnn-epochs` epochs, last epoch kept.

Under the verdict table, one line per column names the best row other than LVPC (and vp1, its own model) and
LVPC's paired verdict against it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from bench import baselines
from bench.datasets import Scene, development_split, load_scene

ROWS = ["single", "lvpc", "vp1", "vp2", "v1", "vf", "dropout", *baselines.METHODS]
LABELS = {"lvpc": "LVPC (prompts)", "vp1": "vp1 zero-fill", "vp2": "vp2 reconstruction",
          "v1": "v1 no language (prototypes)", "vf": "vf no decoupling (one encoder per modality)",
          "dropout": "modality dropout 0.3 (zero-fill)",
          "rf": "RandomForest centre pixel (per test set)",
          "rf_window": "RandomForest 5 x 5 window, 25 x bands features (per test set)",
          "cnn": "small CNN, 11 x 11 window (per test set)"}
UNITS = ["single", "lvpc", "vp2", "v1", "vf", "dropout", *baselines.METHODS]   # trained; lvpc's model also gives vp1
SAME_MODEL = {"lvpc": ("vp1",)}   # rows that are the reference's own model, not alternatives to it
SAME_STAGE1 = ("vp2",)             # rows whose complete column is LVPC's own stage 1 (same seed)


def test_sets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Columns: the complete set, then every absence case (largest first)."""
    from lvpcnet_core.network import absence_cases

    return [tuple(modalities), *(absence_cases(modalities) if len(modalities) > 1 else [])]


def column(test_set: tuple[str, ...], modalities: list[str]) -> str:
    if len(test_set) == len(modalities):
        return "complete"
    return "w/o " + ", ".join(m for m in modalities if m not in test_set)


def capped_labels(labels: np.ndarray, values: list[int], cap: int | None, seed: int = 12345) -> np.ndarray:
    """At most `cap` pixels per class (seeded, the same for every method and seed); None keeps all."""
    from lvpcnet_core.sampling import labelled_pixels

    rows, cols, index = labelled_pixels(labels, values, cap, seed)
    out = np.zeros_like(labels)
    out[rows, cols] = np.asarray(values)[index]
    return out


def _scores(result: dict) -> dict:
    return {"oa": result["oa"], "aa": result["aa"], "kappa": result["kappa"], "n": result["n"],
            "per_class": {k: v["producers_accuracy"] for k, v in result["per_class"].items()}}


class Runner:
    """Trains and scores one (unit, seed) of a scene; results are plain dicts of cells {row: {column: scores}}."""

    def __init__(self, scene: Scene, test: np.ndarray, args: argparse.Namespace) -> None:
        from lvpcnet_core import text_encoders

        self.scene, self.test, self.args = scene, test, args
        self.modalities = list(scene.arrays)
        self.encoder = text_encoders.load_text_encoder(args.text_encoder, log=lambda _: None)

    def settings(self, seed: int, **changes):
        from lvpcnet_core.training import TrainSettings

        a = self.args
        return TrainSettings(epochs_stage1=a.epochs1, epochs_stage2=a.epochs2, patience=a.patience,
                             max_samples_per_class=a.train_per_class, seed=seed, device=a.device, threads=a.threads,
                             **{**getattr(a, "set", {}), **changes})

    def fit(self, modalities: list[str], settings):
        from lvpcnet_core import language
        from lvpcnet_core.progress import SilentProgress
        from lvpcnet_core.workflows import fit_arrays

        s = self.scene
        table = language.build_descriptions(s.class_names, modalities, log=lambda _: None)
        arrays = {m: s.arrays[m] for m in modalities}
        encoder = self.encoder if settings.language else None
        return fit_arrays(arrays, s.train, s.class_values, s.class_names, table, encoder, settings,
                          SilentProgress())

    def score(self, model, test_set: tuple[str, ...], fill: str) -> dict:
        from lvpcnet_core.workflows import evaluate_arrays

        s = self.scene
        arrays = {m: s.arrays[m] for m in test_set}
        return _scores(evaluate_arrays(model, s.class_values, s.class_names, arrays, self.test, fill))

    def run(self, unit: str, seed: int) -> dict:
        sets = test_sets(self.modalities)
        if unit in baselines.METHODS:
            cells, training = {}, {}
            for t in sets:
                cells[column(t, self.modalities)], training[column(t, self.modalities)] = self.baseline(unit, t, seed)
            return {"cells": {unit: cells}, "training": training}
        if unit == "single":
            cells, extra = {}, {}
            for m in self.modalities:
                model, report = self.fit([m], self.settings(seed))
                cells[f"{m}-net"] = {column((m,), self.modalities) if len(self.modalities) > 1 else "complete":
                                     self.score(model, (m,), "prompts")}
                extra[m] = _report(report)
            return {"cells": cells, "training": extra}
        changes = {"v1": {"language": False}, "vp2": {"compensation": "reconstruction"}, "vf": {"decoupling": False},
                   "dropout": {"modality_dropout": 0.3, "cases": []}}.get(unit, {})
        model, report = self.fit(self.modalities, self.settings(seed, **changes))
        fill = "zeros" if unit == "dropout" else "prompts"
        cells = {unit: {column(t, self.modalities): self.score(model, t, fill) for t in sets}}
        if unit == "lvpc":
            cells["vp1"] = {column(t, self.modalities): self.score(model, t, "zeros") for t in sets[1:]}
        params = {k: c.n_parameters() for k, c in model.compensators.items()}
        return {"cells": cells, "training": _report(report), "compensator_parameters": params}

    def baseline(self, method: str, test_set: tuple[str, ...], seed: int) -> tuple[dict, dict]:
        """Scores and training facts of a baseline retrained on exactly the test set's modalities."""
        from lvpcnet_core import metrics

        s, a = self.scene, self.args
        train, test = baselines.pixel_sets({m: s.arrays[m] for m in test_set}, s.train, self.test, s.class_values,
                                           a.train_per_class, seed)
        started = time.perf_counter()
        predicted = baselines.predict(method, train, test, seed, a.threads or 1, a.device, a.cnn_epochs)
        matrix = metrics.confusion(test.labels, predicted, len(s.class_values))
        training = {"n_train": len(train), "n_val": 0, "seconds": time.perf_counter() - started}
        return _scores(metrics.summarise(matrix, s.class_names)), training


def _report(report: dict) -> dict:
    """The training facts worth keeping (no per-epoch history)."""
    return {"stage1_best_epoch": report["stage1"]["best_epoch"], "stage1_val_oa": report["stage1"]["val_oa"],
            "stage1_seconds": report["stage1"]["seconds"], "n_train": report["n_train"], "n_val": report["n_val"],
            "n_labelled": sum(report["class_counts"].values()), "refit": report["refit"],
            "stage2": {k: {"best_epoch": v["best_epoch"], "val_oa": v["val_oa"]} for k, v in report["stage2"].items()},
            "validation": report["validation"]}


def engine_defaults() -> dict:
    """The engine's training defaults (network and schedule): a run made with other defaults is not reused."""
    from lvpcnet_core.training import TrainSettings

    skip = {"epochs_stage1", "epochs_stage2", "patience", "max_samples_per_class", "seed", "device", "threads"}
    # settings added later count only when changed: at the value that means what the code did before them, the runs
    # cached before them stay valid
    later = {"stem_width": None, "samples_per_epoch": None, "band_reduction": 0}
    # as the cache's JSON holds them (tuples become lists), so that a cached run compares equal
    return json.loads(json.dumps({k: v for k, v in TrainSettings().to_dict().items()
                                  if k not in skip and not (k in later and v == later[k])}))


def run_config(args: argparse.Namespace, unit: str | None = None) -> dict:
    """The settings a cached run of `unit` must share to be reused. The baselines' own settings count for them only,
    so adding them left the cached LVPC runs valid; the forest runs cached on raw values are redone."""
    config = {k: getattr(args, k) for k in ("epochs1", "epochs2", "patience", "train_per_class", "test_per_class",
                                            "text_encoder", "modalities")}
    if args.dev:   # only then, so that the runs cached before the option existed stay valid
        config["dev"] = True
    if unit in baselines.METHODS:
        config["baseline_inputs"] = baselines.INPUTS
    else:
        config["engine"] = {**engine_defaults(), **getattr(args, "set", {})}
    if unit == "cnn":
        config["cnn_epochs"] = args.cnn_epochs
    return config


def run_all(args: argparse.Namespace) -> Path:
    from lvpcnet_core.workflows import write_json

    scene = load_scene(args.dataset, args.data, args.modalities)
    if args.dev:
        scene = development_split(scene)
    print(scene.summary(), flush=True)
    test = capped_labels(scene.test, scene.class_values, args.test_per_class)
    runs = Path(args.out) / "runs" / (args.name or scene.name)
    runs.mkdir(parents=True, exist_ok=True)
    units = [u for u in UNITS if len(scene.arrays) > 1 or u in ("single", *baselines.METHODS)]
    units = [u for u in units if not args.methods or u in args.methods]
    runner = None
    for seed in args.seeds:
        for unit in units:
            path = runs / f"{unit}__seed{seed}.json"
            config = run_config(args, unit)
            if path.exists() and json.loads(path.read_text())["config"] == config:
                continue
            runner = runner or Runner(scene, test, args)
            started = time.perf_counter()
            result = runner.run(unit, seed)
            result.update(config=config, unit=unit, seed=seed, seconds=time.perf_counter() - started)
            write_json(path, result)
            oa = {r: {c: round(v["oa"], 2) for c, v in cols.items()} for r, cols in result["cells"].items()}
            print(f"{scene.name} {unit} seed {seed}: {result['seconds']:.0f} s, OA {json.dumps(oa)}", flush=True)
    return write_tables(scene, test, runs, args)


def _load_runs(runs: Path, args: argparse.Namespace) -> list[dict]:
    out = []
    for path in sorted(runs.glob("*__seed*.json")):
        data = json.loads(path.read_text())
        if data["config"] == run_config(args, data["unit"]):
            out.append(data)
    return out


def aggregate(results: list[dict]) -> dict:
    """row -> column -> metric -> {mean, std, values, seeds}."""
    table: dict = {}
    for r in results:
        for row, cols in r["cells"].items():
            for col, scores in cols.items():
                cell = table.setdefault(row, {}).setdefault(col, {"seeds": []})
                cell["seeds"].append(r["seed"])
                for k in ("oa", "aa", "kappa"):
                    cell.setdefault(k, {"values": []})["values"].append(scores[k])
    for cols in table.values():
        for cell in cols.values():
            order = np.argsort(cell["seeds"])
            cell["seeds"] = [cell["seeds"][i] for i in order]
            for k in ("oa", "aa", "kappa"):
                v = np.asarray(cell[k]["values"])[order]
                cell[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                           "values": v.tolist()}
    return table


def compare(table: dict, reference: str = "lvpc") -> dict:
    """Paired OA differences LVPC - baseline over common seeds: beats/loses when |mean| > 2 standard errors."""
    out = {}
    for row, cols in table.items():
        if row == reference:
            continue
        for col, cell in cols.items():
            ref = table.get(reference, {}).get(col)
            if not ref:
                continue
            common = sorted(set(ref["seeds"]) & set(cell["seeds"]))
            if not common:
                continue
            a = np.array([ref["oa"]["values"][ref["seeds"].index(s)] for s in common])
            b = np.array([cell["oa"]["values"][cell["seeds"].index(s)] for s in common])
            d = a - b
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
            verdict = ("undecided (one seed)" if se is None else "beats" if d.mean() > 2 * se
                       else "loses to" if d.mean() < -2 * se else "ties")
            out.setdefault(row, {})[col] = {"mean_difference": float(d.mean()), "standard_error": se,
                                            "n_seeds": len(d), "verdict": verdict}
    return out


def best_alternatives(table: dict, comparison: dict, columns: list[str], reference: str = "lvpc") -> dict:
    """Per column, the row other than the reference (and its own model's variants) with the highest mean OA, both
    OAs and the reference's paired verdict against it: the one comparison a reader looking for a rival needs."""
    out = {}
    for col in columns:
        ref = table.get(reference, {}).get(col)
        rivals = [row for row, cols in table.items() if col in cols and row != reference
                  and row not in SAME_MODEL.get(reference, ()) and not (col == "complete" and row in SAME_STAGE1)]
        if not ref or not rivals:
            continue
        best = max(rivals, key=lambda row: table[row][col]["oa"]["mean"])
        paired = comparison.get(best, {}).get(col, {"verdict": "no common seeds"})
        out[col] = {"row": best, "oa": table[best][col]["oa"]["mean"], "reference_oa": ref["oa"]["mean"], **paired}
    return out


def row_label(row: str) -> str:
    return f"{row[:-4]}-net (single modality)" if row.endswith("-net") else LABELS.get(row, row)


def write_tables(scene: Scene, test: np.ndarray, runs: Path, args: argparse.Namespace) -> Path:
    from lvpcnet_core.workflows import write_json

    results = _load_runs(runs, args)
    table = aggregate(results)
    modalities = list(scene.arrays)
    # LVPC's full model; on a one-modality scene (Trento's LiDAR) LVPC is its stage 1 alone, the single-modality row
    reference = "lvpc" if len(modalities) > 1 else f"{modalities[0]}-net"
    comparison = compare(table, reference)
    columns = [column(t, modalities) for t in test_sets(modalities)]
    best = best_alternatives(table, comparison, columns, reference)
    config = run_config(args, "cnn")
    singles = [r for r in table if r.endswith("-net")]
    rows = [*singles, *[r for r in ROWS if r in table]]
    params = {}
    for r in results:
        for key, n in r.get("compensator_parameters", {}).items():
            params.setdefault(r["unit"], {})[key] = n
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "bench.accuracy", *sys.argv[1:]])
    seeds = sorted({r["seed"] for r in results})
    n_train = sorted({t.get("n_labelled", t["n_train"] + t["n_val"]) for r in results if "training" in r
                      for t in ([r["training"]] if "n_train" in r["training"] else r["training"].values())})
    cap = config["train_per_class"]
    lines = [f"# Accuracy benchmark: {args.name or scene.name}", "",
             f"Command: `{command}`", "",
             f"- Scene: {scene.summary()}",
             f"- Classes: {', '.join(scene.class_names)}",
             f"- Training pixels: {f'at most {cap} per class' if cap else 'all'} from the training part "
             f"({', '.join(map(str, n_train))} px per model; LVPC's models validate on whole areas held out of them "
             "(the engine's spatial split), then train again on all of them; the baselines train on all of them); "
             f"test pixels: {int((test > 0).sum())}"
             + (f" (at most {config['test_per_class']} per class, one fixed draw)" if config["test_per_class"] else ""),
             f"- Settings: stage 1 {config['epochs1']} epochs, stage 2 {config['epochs2']} epochs, patience "
             f"{config['patience']}, text encoder {config['text_encoder']}, engine defaults otherwise"
             + "".join(f", {k} = {v}" for k, v in getattr(args, "set", {}).items())
             + (f"; small CNN {config['cnn_epochs']} epochs, batch 64, Adam 1e-3, last epoch" if "cnn" in table
                else "") + f"; seeds {seeds}",
             f"- Cells: OA / AA / kappa in percent, mean ± standard deviation over {len(seeds)} seeds; "
             "'—' = the method does not apply to that column", ""]
    lines += ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for col in columns:
            c = table[row].get(col)
            cells.append(" / ".join(f"{c[k]['mean']:.2f} ± {c[k]['std']:.2f}" for k in ("oa", "aa", "kappa"))
                         if c else "—")
        lines.append(f"| {row_label(row)} | " + " | ".join(cells) + " |")
    if params:
        lines += ["", "Trainable parameters per absence case (stage 2):", ""]
        for unit, keys in params.items():
            lines.append(f"- {LABELS.get(unit, unit)}: " + ", ".join(f"`{k}` {n:,}" for k, n in sorted(keys.items())))
    if comparison:
        lines += ["", f"{row_label(reference)} against each row, overall accuracy, paired over seeds "
                  "(mean difference in points ± standard error; 'beats' / 'loses to' only beyond 2 standard "
                  "errors):", "",
                  f"| {row_label(reference)} vs | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row in rows:
            if row in comparison:
                cells = [f"{v['verdict']} ({v['mean_difference']:+.2f} ± {v['standard_error'] or 0:.2f})"
                         if (v := comparison[row].get(col)) else "—" for col in columns]
                lines.append(f"| {row_label(row)} | " + " | ".join(cells) + " |")
    if best:
        lines += ["", f"{row_label(reference)} against the best alternative of each column (highest mean OA of the "
                  "other rows; vp1, LVPC's own model zero-filled, and vp2's complete column, LVPC's own stage 1, "
                  "excluded):", ""]
        for col, b in best.items():
            paired = (f" ({b['mean_difference']:+.2f} ± {b['standard_error'] or 0:.2f})"
                      if "mean_difference" in b else "")
            lines.append(f"- {col}: LVPC {b['reference_oa']:.2f} vs {row_label(b['row'])} {b['oa']:.2f}: "
                         f"LVPC {b['verdict']}{paired}")
    out = Path(args.out)
    name = args.name or scene.name
    md = out / f"{name}.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / f"{name}.json", {
        "dataset": scene.name, "command": command, "split": scene.split, "classes": scene.class_names,
        "modalities": modalities, "columns": columns, "config": config, "seeds": seeds, "table": table,
        "reference_row": reference, "comparison_with_lvpc": comparison, "best_alternative_to_lvpc": best, "compensator_parameters": params,
        "platform": {"python": platform.python_version(), "machine": platform.machine()}})
    print(md.read_text(), flush=True)
    return md


def _setting(text: str) -> tuple[str, object]:
    """KEY=VALUE for a field of TrainSettings, the value parsed as JSON (0, false, 0.1) or kept as text."""
    from dataclasses import fields

    from lvpcnet_core.training import TrainSettings

    key, _, value = text.partition("=")
    if key not in {f.name for f in fields(TrainSettings)}:
        raise argparse.ArgumentTypeError(f"'{key}' is not a training setting")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True,
                   help="houston2013, trento, augsburg, slovenia, brandenburg or samson")
    p.add_argument("--data", required=True, help="folder of the dataset's files")
    p.add_argument("--modalities", nargs="+", help="paper datasets: the modalities to use (default: all found)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs1", type=int, default=50)
    p.add_argument("--epochs2", type=int, default=20)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--train-per-class", type=int, default=300,
                   help="cap on training pixels per class (0 = all)")
    p.add_argument("--test-per-class", type=int, default=2000, help="cap on test pixels per class (0 = all)")
    p.add_argument("--methods", nargs="+", choices=UNITS, help="run only these (default: all)")
    p.add_argument("--cnn-epochs", type=int, default=150, help="training epochs of the small CNN baseline")
    p.add_argument("--text-encoder", default="minilm")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default="docs/benchmarks")
    p.add_argument("--name", help="name of the tables and the run cache (default: the dataset's), for variants")
    p.add_argument("--dev", action="store_true",
                   help="score on a development part of the training part (`datasets.development_split`), never on "
                        "the test part: for choosing defaults")
    p.add_argument("--set", action="append", type=_setting, default=[], metavar="KEY=VALUE",
                   help="change one engine training default for the neural rows (e.g. stem_depth=0), for ablations of "
                        "the engine's choices; use with --name")
    args = p.parse_args(argv)
    args.set = dict(args.set)
    args.train_per_class = args.train_per_class or None
    args.test_per_class = args.test_per_class or None
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    run_all(args)


if __name__ == "__main__":
    main()
