"""The algorithm reference and the dialog screenshots: made in the real QGIS desktop (Xvfb), pointed to by helpUrl."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.qgis


def test_every_help_url_opens_its_section_of_the_bundled_page(lvpc_plugin, repo_root: Path) -> None:
    from qgis.core import QgsApplication

    page = (repo_root / "docs" / "algorithms.html").read_text(encoding="utf-8")
    for algorithm in QgsApplication.processingRegistry().providerById("lvpc").algorithms():
        url = urlparse(algorithm.helpUrl())
        assert url.scheme == "file" and url.fragment == algorithm.name(), algorithm.helpUrl()
        assert Path(url.path).resolve() == (repo_root / "docs" / "algorithms.html").resolve()
        assert f'<section id="{algorithm.name()}">' in page, f"{algorithm.id()} has no section: run make docs"


def test_desktop_dialogs_are_photographed_and_the_committed_page_is_current(lvpc_plugin, repo_root: Path,
                                                                          tmp_path: Path) -> None:
    from qgis.core import QgsApplication
    from qgis.PyQt.QtGui import QImage

    result = subprocess.run([sys.executable, str(repo_root / "scripts" / "algorithm_docs.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    names = [a.name() for a in QgsApplication.processingRegistry().providerById("lvpc").algorithms()]
    for name in names:
        image = QImage(str(tmp_path / "dialogs" / f"{name}.png"))
        assert image.width() >= 800 and image.height() >= 600, name
        # a drawn dialog has text, fields and buttons: many distinct colours, not a blank or one-colour grab
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        assert len(colours) > 20, (name, len(colours))
    generated = (tmp_path / "algorithms.html").read_text(encoding="utf-8")
    assert all(f'<img src="dialogs/{name}.png"' in generated for name in names)
    assert generated == (repo_root / "docs" / "algorithms.html").read_text(encoding="utf-8"), \
        "docs/algorithms.html is out of date with the algorithms' help: run `make docs` and commit it"
