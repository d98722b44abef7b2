"""Settings every test needs: no screen, one thread per library on the 2-core machines, paths of the repository."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# fp32 classification on every CPU, so that the equality checks hold everywhere; the bf16 tests set it themselves
os.environ.setdefault("LVPC_BF16", "0")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The bundled demo scene (never ../shared: CI must pass from the repository alone)."""
    return REPO / "demo"
