"""Build the installable plugin zip: dist/lvpc-<version>.zip with everything under a top folder `lvpc/`.

QGIS installs a zip by unpacking it into the plugins folder, so the top folder's name is the plugin's id.
Left out: what only developers need (tests, CI, benchmarks, build files) and what a machine makes
(virtual environments, caches, outputs). Run with any Python 3: it uses the standard library only.
"""
from __future__ import annotations

import argparse
import configparser
import os
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "lvpc"
# Top-level entries of the repository that do not belong in the plugin.
EXCLUDED_TOP = {".git", ".ci", ".venv", "tests", "bench", "scripts", "dist", "build", "Makefile", "pytest.ini",
                "pyproject.toml", ".gitignore", ".gitattributes", ".pytest_cache", ".hypothesis"}
EXCLUDED_ANYWHERE = {"__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}
EXCLUDED_PATHS = {Path("demo") / "output", Path("bench") / "results"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".tmp")
MAX_DOCS_FILE = 512 * 1024  # docs keep their text and small figures, not large files


def version(root: Path = ROOT) -> str:
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(root / "metadata.txt", encoding="utf-8")
    return metadata["general"]["version"]


def plugin_files(root: Path = ROOT) -> list[Path]:
    """The files that go into the zip, relative to `root`, sorted so that two builds list the same."""
    files = []
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if not excluded(rel_folder / d)]
        for name in names:
            rel = rel_folder / name
            path = root / rel
            if excluded(rel) or path.is_symlink():
                continue
            if rel.parts[0] == "docs" and path.stat().st_size > MAX_DOCS_FILE:
                continue
            files.append(rel)
    return sorted(files)


def excluded(rel: Path) -> bool:
    return (rel.parts[0] in EXCLUDED_TOP or rel in EXCLUDED_PATHS or any(p in EXCLUDED_ANYWHERE for p in rel.parts)
            or rel.name.endswith(EXCLUDED_SUFFIXES))


def build(out_dir: Path, root: Path = ROOT) -> Path:
    """Write the zip (through a temporary name, so a failed build leaves no half zip) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{version(root)}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in plugin_files(root):
            archive.write(root / rel, f"{PLUGIN}/{rel.as_posix()}")
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="folder for the zip (default: dist/)")
    target = build(parser.parse_args().out_dir)
    print(f"plugin zip: {target}")


if __name__ == "__main__":
    main()
