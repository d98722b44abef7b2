"""installer.py and lvpc:installdependencies: QGIS's Python found per system, pip's command, failures in words,
and real installs from PyPI through the real qgis_process, atomic (no staging folder, no half install left)."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lvpcnet_core.errors import Cancelled, LvpcError
from lvpcnet_core.progress import SilentProgress


@pytest.fixture
def installer(plugin_package):
    return importlib.import_module(f"{plugin_package.__name__}.installer")


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


@pytest.mark.parametrize("platform, layout, executable, exec_prefix", [
    # Debian: /usr/bin/qgis, Python in /usr/bin/python3.11 (not the PATH's python3, which may be another one)
    ("linux", "usr/bin/python3.11", "usr/bin/qgis", "usr"),
    # OSGeo4W / standalone: bin\qgis-bin.exe, apps\Python311\python.exe (= sys.exec_prefix)
    ("win32", "OSGeo4W/apps/Python311/python.exe", "OSGeo4W/bin/qgis-bin.exe", "OSGeo4W/apps/Python311"),
    ("win32", "QGIS 3.22/apps/Python311/python.exe", "QGIS 3.22/bin/qgis-bin.exe", "QGIS 3.22/elsewhere"),
    ("darwin", "QGIS.app/Contents/MacOS/bin/python3", "QGIS.app/Contents/MacOS/QGIS", "QGIS.app/Contents/Frameworks"),
])
def test_find_python_in_each_systems_layout(installer, tmp_path: Path, platform: str, layout: str, executable: str,
                                            exec_prefix: str) -> None:
    python = touch(tmp_path / layout)
    touch(tmp_path / executable)
    touch(tmp_path / "usr" / "bin" / "python3")  # a second Python that must not win over the versioned one
    found = installer.find_python(platform, str(tmp_path / executable), str(tmp_path / exec_prefix), (3, 11))
    assert found == str(python)


def test_find_python_names_where_it_looked(installer, tmp_path: Path) -> None:
    with pytest.raises(LvpcError, match=r"Python 3\.11 that runs QGIS.*python3\.11.*by hand"):
        installer.find_python("linux", str(tmp_path / "qgis"), str(tmp_path), (3, 11))


def test_check_pip_refuses_python_without_pip_and_other_version(installer, tmp_path: Path) -> None:
    venv = tmp_path / "nopip"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    with pytest.raises(LvpcError, match=r"has no pip.*-m ensurepip --upgrade"):
        installer.check_pip(str(venv / "bin" / "python"))
    with pytest.raises(LvpcError, match=rf"is Python {sys.version_info[0]}\.{sys.version_info[1]} but QGIS runs "
                                        r"Python 3\.99"):
        installer.check_pip(sys.executable, (3, 99))
    installer.check_pip(sys.executable)


@pytest.mark.parametrize("choice, platform, gpu, index", [
    ("auto", "linux", False, ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]),
    ("auto", "linux", True, ["--extra-index-url", "https://download.pytorch.org/whl/cu130"]),
    ("auto", "win32", True, ["--extra-index-url", "https://download.pytorch.org/whl/cu130"]),
    ("cpu", "win32", True, ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]),  # the user's override
    ("cuda", "linux", False, ["--extra-index-url", "https://download.pytorch.org/whl/cu130"]),
    ("auto", "darwin", False, []),  # PyPI's one macOS build
])
def test_torch_build_and_its_index(installer, choice: str, platform: str, gpu: bool, index: list[str]) -> None:
    build = installer.torch_build(choice, platform, gpu)
    assert installer.index_options(build, ["numpy<2", "torch==2.14.1", "torchvision==0.29.1"]) == index
    assert installer.index_options(build, ["six==1.16.0", "torchmetrics==1.0"]) == []  # no torch: no torch index


def test_torch_build_refuses_cuda_on_macos_and_unknown_choice(installer) -> None:
    with pytest.raises(LvpcError, match="no CUDA build for macOS"):
        installer.torch_build("cuda", "darwin")
    with pytest.raises(LvpcError, match="TORCH_BUILD: 'rocm'"):
        installer.torch_build("rocm", "linux")


def test_has_nvidia_gpu_from_nvidia_smi_or_driver(installer, tmp_path: Path) -> None:
    empty, tools = tmp_path / "empty", tmp_path / "tools"
    empty.mkdir()
    touch(tools / "nvidia-smi").chmod(0o755)
    absent = str(tmp_path / "no-driver")
    assert not installer.has_nvidia_gpu(str(empty), absent)
    assert installer.has_nvidia_gpu(str(tools), absent)
    assert installer.has_nvidia_gpu(str(empty), str(empty))


def test_pip_command_installs_into_staging_only(installer) -> None:
    command = installer.pip_command("/usr/bin/python3.11", "/d/.site.staging-x", ["six==1.16.0"], ["--extra-index-url",
                                                                                                 "https://i"])
    assert command[:6] == ["/usr/bin/python3.11", "-m", "pip", "install", "--target", "/d/.site.staging-x"]
    assert "--no-user" in command and "--no-input" in command and command[-3:] == ["--extra-index-url", "https://i",
                                                                                   "six==1.16.0"]


def test_parse_packages(installer, plugin_package) -> None:
    deps = importlib.import_module(f"{plugin_package.__name__}.deps")
    assert installer.parse_packages(" ".join(deps.RUNTIME_REQUIREMENTS)) == list(deps.RUNTIME_REQUIREMENTS)
    assert installer.parse_packages('six==1.16.0 "numpy<2"') == ["six==1.16.0", "numpy<2"]
    with pytest.raises(LvpcError, match="'--target' is a pip option"):
        installer.parse_packages("six --target /tmp")
    with pytest.raises(LvpcError, match="PACKAGES is empty"):
        installer.parse_packages("  ")


@pytest.mark.parametrize("lines, expected", [
    (["WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(': Failed to establish a new "
      "connection: [Errno -3] Temporary failure in name resolution')': /simple/six/",
      "ERROR: No matching distribution found for six==1.16.0"], "could not reach the package index"),
    (["ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"], "disk ran full"),
    (["ERROR: Could not install packages due to an OSError: [Errno 13] Permission denied: '/x'"],
     "refused access to a file (ERROR: Could not install"),
    (["ERROR: No matching distribution found for lvpc-no-such-package==0.0.1"],
     "no release of lvpc-no-such-package==0.0.1 for this Python"),
    (["Collecting x", "ERROR: something new"],
     "exited with code 2; its last lines:\nCollecting x\nERROR: something new"),
])
def test_explain_failure(installer, tmp_path: Path, lines: list[str], expected: str) -> None:
    message = installer.explain_failure(lines, 2, tmp_path / "site")
    assert expected in message and f"{tmp_path / 'site'} is as it was" in message


def test_check_target_refuses_a_file_and_a_foreign_folder(installer, tmp_path: Path) -> None:
    with pytest.raises(LvpcError, match="is a file"):
        installer.check_target(touch(tmp_path / "file"))
    touch(tmp_path / "documents" / "thesis.odt")
    with pytest.raises(LvpcError, match="did not put there"):
        installer.check_target(tmp_path / "documents")
    touch(tmp_path / "ours" / installer.MARKER)
    (tmp_path / "empty").mkdir()
    for fine in ("ours", "empty", "new"):
        installer.check_target(tmp_path / fine)


def test_replace_folder_keeps_the_old_one_until_the_new_is_in(installer, tmp_path: Path) -> None:
    target, new = tmp_path / "site", tmp_path / ".site.staging"
    touch(target / "old.py")
    with pytest.raises(LvpcError, match="previous folder is still the active one"):
        installer.replace_folder(new, target)  # no staging folder: the second rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"] and (target / "old.py").is_file()
    touch(new / "new.py")
    installer.replace_folder(new, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    assert [p.name for p in target.iterdir()] == ["new.py"]


class CancelOn(SilentProgress):
    """Cancels once a message starting with `prefix` was reported, as the dialog's Cancel button would."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def is_canceled(self) -> bool:
        return any(m.startswith(self.prefix) for m in self.messages)


def leftovers(folder: Path) -> list[str]:
    """Staging or set-aside folders of an install (the lock file `.<name>.lock` may stay)."""
    return [p.name for p in folder.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def gone(pid: int, timeout: float = 5) -> bool:
    """The process ended (a zombie counts: nobody in this container may reap an orphan)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_cancel_stops_pip_and_its_children_quickly(installer) -> None:
    script = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
              "time.sleep(60)']); print(child.pid, flush=True); time.sleep(60)")
    progress, start = CancelOn(), time.monotonic()
    with pytest.raises(Cancelled):
        installer.run_pip([sys.executable, "-c", script], progress)
    assert time.monotonic() - start < 15
    assert gone(int(progress.messages[0]))  # what pip started (a build backend) is stopped too


def test_cancelled_install_leaves_the_previous_folder_and_no_staging(installer, tmp_path: Path) -> None:
    target = tmp_path / "site"
    touch(target / installer.MARKER)
    with pytest.raises(Cancelled):
        installer.install(["six==1.16.0"], target, CancelOn("Running:"), python=sys.executable)  # once pip runs
    assert leftovers(tmp_path) == [] and [p.name for p in target.iterdir()] == [installer.MARKER]


def test_install_cleans_up_after_a_killed_install(installer, tmp_path: Path) -> None:
    """Killed between its two renames: the previous install is set aside and the target missing; put back."""
    target, progress = tmp_path / "site", CancelOn("Running:")
    touch(tmp_path / ".site.staging-abc" / "torch" / "__init__.py")
    touch(tmp_path / ".site.old-1-2" / installer.MARKER)
    with pytest.raises(Cancelled):
        installer.install(["six==1.16.0"], target, progress, python=sys.executable)
    assert leftovers(tmp_path) == [] and [p.name for p in target.iterdir()] == [installer.MARKER]
    assert any(m.startswith("Removed what an interrupted install left") and ".site.staging-abc" in m
               for m in progress.messages)


def test_second_install_into_one_folder_is_refused_meanwhile(installer, tmp_path: Path) -> None:
    target = tmp_path / "site"
    with installer.target_lock(target):
        with pytest.raises(LvpcError, match="another install into .*site is running"):
            installer.install(["six==1.16.0"], target, SilentProgress(), python=sys.executable)
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.qgis
def test_qgis_process_installs_a_package_from_pypi(qgis_process, tmp_path: Path) -> None:
    target = tmp_path / "packages"
    result = qgis_process.run_json("lvpc:installdependencies", PACKAGES="six==1.16.0", TARGET=target)
    assert Path(result["results"]["FOLDER"]) == target
    log = "\n".join(result["log"]["info"])
    assert "Successfully installed six-1.16.0" in log and "download.pytorch.org" not in log
    imported = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import six;"
                               "print(six.__version__, six.__file__)", str(target)],
                              capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout.split() == ["1.16.0", str(target / "six.py")]
    assert json.loads((target / ".lvpc-packages.json").read_text())["packages"] == ["six==1.16.0"]
    assert leftovers(tmp_path) == []


@pytest.mark.qgis
def test_qgis_process_failed_install_says_why_and_leaves_nothing(qgis_process, tmp_path: Path) -> None:
    target = tmp_path / "packages"
    done = qgis_process.run("lvpc:installdependencies", PACKAGES="lvpc-no-such-package==0.0.1", TARGET=target)
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "pip found no release of lvpc-no-such-package==0.0.1" in message and "Traceback" not in message
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.qgis
def test_qgis_process_without_network_says_so(qgis_process, tmp_path: Path) -> None:
    """The package index unreachable for real: pip's connections go to a proxy that refuses them."""
    target = tmp_path / "packages"
    dead = "http://127.0.0.1:9"
    done = qgis_process("run", "lvpc:installdependencies", "--", "PACKAGES=lvpc-no-such-package==0.0.1",
                        f"TARGET={target}", env={"HTTPS_PROXY": dead, "https_proxy": dead, "NO_PROXY": "",
                                                 "no_proxy": "", "PIP_RETRIES": "1"})
    assert done.returncode != 0
    assert "pip could not reach the package index" in done.stdout + done.stderr
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.qgis
def test_installed_package_imports_in_the_same_qgis_without_restart(lvpc_plugin, plugin_package,
                                                                    tmp_path: Path) -> None:
    """What the dialog does in QGIS desktop: after the run, the new package imports in this very process, and the
    check every algorithm makes before its run (`deps.missing_modules`) finds it."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    missing_modules = importlib.import_module(f"{plugin_package.__name__}.deps").missing_modules
    target = str(tmp_path / "packages")
    assert missing_modules(["tabulate"]) == ["tabulate"]
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    try:
        result = processing.run("lvpc:installdependencies", {"PACKAGES": "tabulate==0.9.0", "TARGET": target},
                                context=context, feedback=feedback)
        assert result["FOLDER"] == target
        assert missing_modules(["tabulate"]) == []
        tabulate = importlib.import_module("tabulate")
        assert Path(tabulate.__file__).is_relative_to(target)
    finally:
        sys.modules.pop("tabulate", None)
        if target in sys.path:
            sys.path.remove(target)


# Run by QGIS desktop (--code) once its window is up: the LVPC menu, its action triggered (the dialog it opens is
# read and closed by a timer, since the dialog runs its own event loop), then the plugin unloaded; all to a JSON file.
DESKTOP_SCRIPT = '''
import json, os, traceback
import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

seen = {}

def lvpc_menu():
    return [[a.text() for a in m.menu().actions()] for m in iface.pluginMenu().actions()
            if m.menu() and m.text() == "&LVPC"]

def close_dialog():
    dialogs = [w for w in QApplication.topLevelWidgets() if w.isVisible() and hasattr(w, "algorithm")]
    seen["dialogs"] = [d.algorithm().id() for d in dialogs]
    for d in dialogs:
        d.reject()

def check():
    try:
        seen["menu"] = lvpc_menu()
        QTimer.singleShot(3000, close_dialog)
        [m for m in iface.pluginMenu().actions() if m.text() == "&LVPC"][0].menu().actions()[0].trigger()
        qgis.utils.unloadPlugin("lvpc")
        seen["after_unload"] = lvpc_menu()
    except Exception:
        seen["error"] = traceback.format_exc()
    with open(os.environ["LVPC_TEST_OUT"], "w") as out:
        json.dump(seen, out)
    QgsApplication.exit(0)

QTimer.singleShot(0, check)
'''


@pytest.mark.qgis
@pytest.mark.slow
def test_desktop_menu_opens_the_installer_and_unload_removes_it(make_qgis_process, plugins_dir: Path,
                                                                tmp_path: Path) -> None:
    """Real QGIS desktop (on a virtual X display): Plugins > LVPC > Install LVPC dependencies… opens the dialog."""
    if shutil.which("xvfb-run") is None:
        pytest.fail("no xvfb-run on PATH: run `make setup`")
    profile = make_qgis_process(plugins_dir)  # a fresh profile with the plugin enabled, as for qgis_process
    script, seen = tmp_path / "check.py", tmp_path / "seen.json"
    script.write_text(DESKTOP_SCRIPT, encoding="utf-8")
    environment = {**os.environ, "QGIS_PLUGINPATH": str(plugins_dir), "LVPC_TEST_OUT": str(seen),
                   "XDG_DATA_HOME": str(tmp_path / "data")}
    environment.pop("QT_QPA_PLATFORM", None)  # QGIS desktop aborts on Qt's offscreen platform: xvfb's display
    done = subprocess.run(["xvfb-run", "-a", "qgis", "--nologo", "--noversioncheck", "--profiles-path",
                           str(profile.config_root), "--code", str(script)], capture_output=True, text=True,
                          env=environment, timeout=180, check=False)
    assert seen.is_file(), done.stdout + done.stderr
    result = json.loads(seen.read_text())
    assert "error" not in result, result["error"]
    assert result["menu"] == [["Install LVPC dependencies…"]]
    assert result["dialogs"] == ["lvpc:installdependencies"]
    assert result["after_unload"] == []
    assert done.returncode == 0
