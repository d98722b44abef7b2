"""The side-by-side benchmarks must run the engine they are given, not the checkout's."""
import subprocess

from bench.common import ROOT, engine_at, run_engine

WHICH = "import json, lvpcnet_core; print(json.dumps({'file': lvpcnet_core.__file__}))"


def test_run_engine_imports_the_extracted_revision_and_the_checkout(tmp_path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    tree = engine_at(head, str(tmp_path / "before"))
    assert run_engine(tree, WHICH)["file"] == str(tree / "lvpcnet_core" / "__init__.py")
    assert run_engine(None, WHICH)["file"] == str(ROOT / "lvpcnet_core" / "__init__.py")
