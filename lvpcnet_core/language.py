"""Language priors: one shared and one per-modality description of every class.

The paper expands the template "<class; Name>" into a shared sentence and asks, per modality, what that sensor sees
of the class (HS: colour, material, chemistry; LiDAR: height, structure; SAR: backscatter, roughness, moisture).
Users must be able to read and edit these texts, so the table is a plain JSON or CSV file.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.files import atomic_output

_DATA_FILE = Path(__file__).with_name("data") / "land_cover_descriptions.json"

SHARED_TEMPLATE = "A remote sensing image of {name}, {what}."
# Fallbacks still name the attributes each sensor measures, so an unknown class gets a usable, sensor-specific text.
FALLBACK_WHAT = "a land-cover class"
FALLBACK_SPECIFIC = {
    "hs": "Hyperspectral signature of {name}: its colour, surface material and chemistry, and spectral features "
          "such as chlorophyll absorption, the red edge and water absorption bands.",
    "lidar": "LiDAR elevation of {name}: its height above ground, vertical structure, surface roughness "
             "and number of returns.",
    "sar": "SAR backscatter of {name}: its backscatter level, surface roughness, moisture, "
           "geometry such as double bounce, and speckle texture.",
}
GENERIC_SPECIFIC = "The class {name} as seen in the {modality} image."


@dataclass
class DescriptionTable:
    """Class descriptions: `shared[class]` and `specific[modality][class]`.

    `generic` lists, per modality ("shared" for the shared text), the classes whose text is only a template
    fallback; it is informational and not written to files.
    """

    modalities: list[str]
    classes: list[str]
    shared: dict[str, str]
    specific: dict[str, dict[str, str]]
    generic: dict[str, list[str]] = field(default_factory=dict)

    def texts(self) -> tuple[list[str], dict[str, list[str]]]:
        """Shared texts in class order and, per modality, the specific texts in class order."""
        return ([self.shared[c] for c in self.classes],
                {m: [self.specific[m][c] for c in self.classes] for m in self.modalities})

    def validate(self, classes: list[str], modalities: list[str]) -> DescriptionTable:
        """Check every class has a shared and a per-modality text; return the table in that class/modality order.

        Class names match ignoring case and surrounding spaces, so a file edited by hand still fits the ROIs.
        """
        by_key = {_key(c): c for c in self.classes}
        problems = []
        picked: dict[str, str] = {}
        for c in classes:
            own = by_key.get(_key(c))
            if own is None:
                problems.append(f"class '{c}' is not in the table")
                continue
            picked[c] = own
            if not self.shared.get(own, "").strip():
                problems.append(f"class '{c}' has no shared description")
        for m in modalities:
            if m not in self.modalities:
                problems.append(f"modality '{m}' has no column")
                continue
            missing = [c for c in picked if not self.specific.get(m, {}).get(picked[c], "").strip()]
            problems += [f"class '{c}' has no '{m}' description" for c in missing]
        if problems:
            raise LvpcError(
                "Class descriptions (DESCRIPTIONS) are incomplete: " + "; ".join(problems)
                + f". The table has classes {self.classes} and modalities {self.modalities}. Edit the file so that "
                "every class has a 'shared' text and one text per modality, or leave DESCRIPTIONS empty to use "
                "the built-in descriptions.")
        return DescriptionTable(
            modalities=list(modalities), classes=list(classes),
            shared={c: self.shared[picked[c]] for c in classes},
            specific={m: {c: self.specific[m][picked[c]] for c in classes} for m in modalities},
            generic={m: [c for c in classes if picked[c] in self.generic.get(m, [])]
                     for m in ["shared", *modalities] if self.generic.get(m)})

    def to_dict(self) -> dict:
        """The JSON layout of the file, also stored inside every model."""
        rows = [{"name": c, "shared": self.shared.get(c, ""),
                 **{m: self.specific.get(m, {}).get(c, "") for m in self.modalities}} for c in self.classes]
        return {"modalities": list(self.modalities), "classes": rows}

    @classmethod
    def from_dict(cls, data: dict) -> DescriptionTable:
        modalities = [str(m) for m in data["modalities"]]
        rows = [{k: "" if v is None else str(v) for k, v in r.items()} for r in data["classes"]]
        return cls._from_rows(modalities, rows)

    @classmethod
    def _from_rows(cls, modalities: list[str], rows: list[dict[str, str]]) -> DescriptionTable:
        classes = [r["name"].strip() for r in rows]
        return cls(modalities=modalities, classes=classes,
                   shared={c: r.get("shared", "").strip() for c, r in zip(classes, rows)},
                   specific={m: {c: r.get(m, "").strip() for c, r in zip(classes, rows)} for m in modalities})

    def save(self, path: str | Path) -> None:
        """Write as `.json` or `.csv` (UTF-8, every field quoted) for the user to edit; atomically."""
        data = self.to_dict()
        rows = data["classes"]
        suffix = _suffix(Path(path))
        with atomic_output(path, "OUTPUT") as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            if suffix == ".json":
                f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
                return
            writer = csv.writer(f, quoting=csv.QUOTE_ALL)
            writer.writerow(["class", "shared", *self.modalities])
            writer.writerows([r["name"], r["shared"], *(r[m] for m in self.modalities)] for r in rows)

    @classmethod
    def load(cls, path: str | Path) -> DescriptionTable:
        """Read a `.json` or `.csv` table written by `save` or by hand; call `validate` before use."""
        path = Path(path)
        suffix = _suffix(path)
        try:
            if suffix == ".json":
                return cls.from_dict(json.loads(path.read_text(encoding="utf-8-sig")))
            else:
                with path.open(encoding="utf-8-sig", newline="") as f:
                    records = list(csv.reader(f))
                header = [h.strip() for h in records[0]]
                if header[:2] != ["class", "shared"]:
                    raise ValueError(f"the first columns must be 'class' and 'shared', found {header[:2]}")
                modalities = header[2:]
                rows = [dict(zip(["name", "shared", *modalities], r)) for r in records[1:] if any(r)]
                return cls._from_rows(modalities, rows)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise LvpcError(
                f"Cannot read the class descriptions (DESCRIPTIONS) '{path}': {e}. Expected JSON "
                '{"modalities": [...], "classes": [{"name": ..., "shared": ..., "<modality>": ...}]} or a CSV with '
                "columns class, shared, <modality>...; write a template with the 'describe' tool.") from e


def build_descriptions(classes: list[str], modalities: list[str],
                       log: Callable[[str], None] | None = None) -> DescriptionTable:
    """Built-in descriptions for `classes`; always returns a complete table.

    Class names are matched forgivingly (case, underscores, plurals, synonyms, a trailing number as in
    "parking lot 3"). An unknown class gets a template that still names the sensor's attributes; a modality other
    than hs, lidar and sar gets a generic sentence. Both are listed in `generic` and reported through `log`,
    because such texts carry little information: the user should edit them.
    """
    table = DescriptionTable(modalities=list(modalities), classes=list(classes), shared={},
                             specific={m: {} for m in modalities})
    unknown_classes = []
    for c in classes:
        name = _display_name(c)
        entry = _find_entry(c)
        if entry is None:
            unknown_classes.append(c)
        table.shared[c] = SHARED_TEMPLATE.format(name=name, what=entry["what"] if entry else FALLBACK_WHAT)
        for m in modalities:
            if entry is not None and m in entry:
                text = entry[m]
            else:
                text = FALLBACK_SPECIFIC.get(m, GENERIC_SPECIFIC)
                table.generic.setdefault(m, []).append(c)
            table.specific[m][c] = text.format(name=name, modality=m)
    if unknown_classes:
        table.generic["shared"] = unknown_classes
    if log is not None:
        if unknown_classes:
            log(f"No built-in description for classes {unknown_classes}: template texts used; "
                "edit them in a descriptions file for better language priors.")
        for m in modalities:
            if m not in FALLBACK_SPECIFIC:
                log(f"Modality '{m}' has no built-in descriptions (only hs, lidar, sar do): a generic sentence was "
                    f"used for every class; write what the '{m}' sensor sees of each class in a descriptions file.")
    return table


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise LvpcError(f"Class descriptions (DESCRIPTIONS) '{path}' must be a .json or .csv file.")
    return suffix


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


def _display_name(name: str) -> str:
    """'Parking_Lot_1' -> 'parking lot 1': how a class reads inside a sentence."""
    return " ".join(re.sub(r"[_\-]+", " ", name).split()).lower()


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def _normalise(name: str) -> str:
    """Lower case, punctuation and 'and'/'or' dropped, every word singular: the key for forgiving matching."""
    words = re.sub(r"[^0-9a-z]+", " ", name.casefold()).split()
    return " ".join(_singular(w) for w in words if w not in ("and", "or"))


@lru_cache(maxsize=1)
def _entries_by_name() -> dict[str, dict[str, str]]:
    entries = json.loads(_DATA_FILE.read_text(encoding="utf-8"))["entries"]
    return {_normalise(n): e for e in entries for n in e["names"]}


def _find_entry(name: str) -> dict[str, str] | None:
    """The built-in entry for a class name; a trailing number ('parking lot 3') falls back to the plain name."""
    index = _entries_by_name()
    key = _normalise(name)
    if key in index:
        return index[key]
    return index.get(re.sub(r"(\s\d+)+$", "", key))
