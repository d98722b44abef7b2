"""The 'results in short' table of docs/benchmarks/README.md, made from the benchmark's JSON tables (no copying by hand).

    python -m bench.summary trento slovenia brandenburg samson

One line per (scene, test column): mean ± std OA of every row, and LVPC's verdict against the best alternative.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.accuracy import row_label

COLUMNS = ["lvpc", "single", "vp1", "vp2", "v1", "vf", "dropout", "rf", "rf_window", "cnn"]
HEADER = {"lvpc": "LVPC", "single": "single-modality net", "vp1": "vp1 zero-fill", "vp2": "vp2 reconstruction",
          "v1": "v1 no language", "vf": "vf no decoupling", "dropout": "modality dropout", "rf": "RF centre px",
          "rf_window": "RF 5x5 window", "cnn": "small CNN"}


def lines(names: list[str], folder: Path) -> list[str]:
    out = ["| scene / test set | " + " | ".join(HEADER[c] for c in COLUMNS) + " | LVPC vs best alternative |",
           "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name in names:
        data = json.loads((folder / f"{name}.json").read_text())
        table, reference = data["table"], data.get("reference_row", "lvpc")
        for col in data["columns"]:
            cells = []
            for key in COLUMNS:
                row = reference if key == "lvpc" else key
                if key == "single":
                    row = next((r for r in table if r.endswith("-net") and col in table[r] and r != reference), None)
                cell = table.get(row, {}).get(col) if row else None
                cells.append(f"{cell['oa']['mean']:.2f} ± {cell['oa']['std']:.2f}" if cell else "—")
            best = data.get("best_alternative_to_lvpc", {}).get(col)
            verdict = (f"{best['verdict']} {row_label(best['row'])} ({best['mean_difference']:+.2f} ± "
                       f"{best['standard_error'] or 0:.2f})" if best and "mean_difference" in best else "—")
            out.append(f"| {name}, {col} | " + " | ".join(cells) + f" | {verdict} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="+", help="table names under --folder (e.g. trento slovenia)")
    p.add_argument("--folder", default="docs/benchmarks")
    args = p.parse_args()
    print("\n".join(lines(args.names, Path(args.folder))))


if __name__ == "__main__":
    main()
