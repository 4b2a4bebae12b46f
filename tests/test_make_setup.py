"""`make setup`: its checks of PYTHON before it builds the venv, and constraints.txt's pins for each host
Python it supports (whether each pinned release has wheels for that Python is shown by running `make setup`
under it, which needs the network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dpupose.dpu.tomlload import read_toml

ROOT = Path(__file__).resolve().parents[1]
HOST_PYTHONS = ("3.10", "3.11", "3.12", "3.13")

# A stand-in for a Python of another version: `-c CODE` runs CODE with that sys.version_info; `-m venv DIR`
# makes DIR with this stand-in as its python and a pip that logs its arguments and fails (the build stops).
FAKE_PYTHON = """#!{python}
import os, sys
sys.version_info = {version}
BASE = None  # in a venv made by a stand-in: the stand-in that made it
sys._base_executable = BASE or os.path.abspath(__file__)
args = sys.argv[1:]
if args[0] == "-c":
    exec(args[1])
elif args[:2] == ["-m", "venv"]:
    bin_dir = os.path.join(args[2], "bin")
    os.makedirs(bin_dir, exist_ok=True)
    open(os.path.join(args[2], "pyvenv.cfg"), "w").close()
    with open(__file__) as src, open(os.path.join(bin_dir, "python"), "w") as dst:
        dst.write(src.read().replace("BASE = None", f"BASE = {{os.path.abspath(__file__)!r}}"))
    with open(os.path.join(bin_dir, "pip"), "w") as pip:
        pip.write('#!/bin/sh\\necho "$@" >> "$(dirname "$0")/pip.log"\\nexit 1\\n')
    for name in ("python", "pip"):
        os.chmod(os.path.join(bin_dir, name), 0o755)
"""


def fake_python(path: Path, version: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_PYTHON.format(python=sys.executable, version=(*version, "final", 0)))
    path.chmod(0o755)
    return path


def make_setup(python: Path, venv: Path) -> subprocess.CompletedProcess:
    argv = ["make", "-s", "setup", f"PYTHON={python}", f"VENV={venv}", "TORCH_INDEX_ARG="]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@needs_make
def test_setup_refuses_a_python_older_than_3_10_in_one_line(tmp_path):
    venv = tmp_path / "venv"
    old = make_setup(fake_python(tmp_path / "py39" / "python3", (3, 9, 18)), venv)
    assert old.returncode != 0 and not venv.exists()
    assert old.stderr.splitlines()[0] == (
        f"make setup: PYTHON={tmp_path}/py39/python3 is Python 3.9; dpupose needs 3.10 or newer: "
        "make setup PYTHON=python3.12"
    )
    missing = make_setup(tmp_path / "python3.12", venv)
    assert missing.returncode != 0 and not venv.exists()
    assert missing.stderr.startswith(f"make setup: PYTHON={tmp_path}/python3.12 does not run;")


@needs_make
def test_setup_makes_a_venv_of_another_python_again(tmp_path):
    """`python -m venv DIR` over a venv of another Python keeps DIR/bin/python3 linked to the old one, so a
    .venv left by a failed setup under the host's default Python kept failing with PYTHON=python3.12."""
    venv = tmp_path / "venv"
    fake_python(venv / "bin" / "python", (3, 9, 18))
    (venv / "pyvenv.cfg").touch()
    (venv / "old").touch()
    rebuilt = make_setup(fake_python(tmp_path / "py312" / "python3", (3, 12, 1)), venv)
    assert f"make setup: {venv} was made by another Python than PYTHON=" in rebuilt.stdout
    assert not (venv / "old").exists() and (venv / "bin" / "pip.log").read_text() == "install -q --upgrade pip\n"
    assert rebuilt.returncode != 0  # the stand-in's pip fails: no stamp
    # The same Python again: the venv is kept (its packages are not installed again from nothing).
    (venv / "old").touch()
    again = make_setup(tmp_path / "py312" / "python3", venv)
    assert "made by another Python" not in again.stdout and (venv / "old").exists()
    # No PYTHON given: the venv's own Python is used again, not the host's python3.
    argv = ["make", "-s", "setup", f"VENV={venv}", "TORCH_INDEX_ARG="]
    plain = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=without_python())
    assert "made by another Python" not in plain.stdout and (venv / "old").exists()
    assert (venv / "bin" / "pip.log").read_text().count("install -q --upgrade pip") == 3


@needs_make
@pytest.mark.parametrize("target", ["setup", "board"])
def test_setup_refuses_a_venv_folder_that_is_no_virtual_environment(tmp_path, target):
    """VENV (or BOARD_VENV) naming a folder that is no venv, such as one holding several (VENV=~/envs): setup
    found no Python of the version wanted in it and removed the whole folder (rm -rf) to make it again. A
    folder without pyvenv.cfg, which every venv has, is refused, and stays as it was."""
    folder = tmp_path / "envs"
    (folder / "project-a" / "bin").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    python = fake_python(tmp_path / "py312" / "python3", (3, 12, 1))
    if target == "setup":
        argv = ["make", "-s", "setup", f"PYTHON={python}", f"VENV={folder}", "TORCH_INDEX_ARG="]
        said = f"make setup: VENV={folder} exists"
    else:
        argv = ["make", "-s", f"BOARD_VENV={folder}", f"{folder}/.installed", f"PY310={python}"]
        said = f"make {folder}/.installed: BOARD_VENV={folder} exists"
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        f"{said} and is no virtual environment (it has no pyvenv.cfg), which "
        f"{'setup' if target == 'setup' else 'this'} would remove and make again: give another "
        f"{'VENV' if target == 'setup' else 'BOARD_VENV'}"
    )
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "project-a" / "bin").is_dir()


@needs_make
@pytest.mark.parametrize("target", ["setup", "board"])
def test_an_empty_venv_folder_is_made_the_venv_in_place(tmp_path, target):
    """VENV (or BOARD_VENV) an empty folder, such as a volume mounted for it in a container: refused as 'no
    virtual environment', though `python -m venv` makes one in it and nothing of anyone's is there to lose.
    It is made the venv, in place (a mount point cannot be removed and made again)."""
    folder = tmp_path / "venv"
    folder.mkdir()
    inode = folder.stat().st_ino
    python = fake_python(tmp_path / "py312" / "python3", (3, 12, 1))
    if target == "setup":
        argv = ["make", "-s", "setup", f"PYTHON={python}", f"VENV={folder}", "TORCH_INDEX_ARG="]
    else:
        argv = ["make", "-s", f"BOARD_VENV={folder}", f"{folder}/.installed", f"PY310={python}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0  # the stand-in's pip fails: no stamp
    assert "no virtual environment" not in done.stderr and "made by another Python" not in done.stdout
    assert (folder / "bin" / "pip.log").read_text() == "install -q --upgrade pip\n"
    assert folder.stat().st_ino == inode and (folder / "pyvenv.cfg").is_file()


@needs_make
def test_setup_with_an_empty_python_takes_the_default(tmp_path):
    """PYTHON=$(MY_PYTHON) with it unset: an empty PYTHON was run as the interpreter ('make setup: PYTHON= does
    not run'), where the verbs' variables given empty take their default; it is the venv's own Python."""
    venv = tmp_path / "venv"
    fake_python(venv / "bin" / "python", (3, 12, 1))  # the venv of a Python that is not the host's python3
    (venv / "pyvenv.cfg").touch()
    (venv / "old").touch()
    argv = ["make", "-s", "setup", "PYTHON=", f"VENV={venv}", "TORCH_INDEX_ARG="]
    empty = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=without_python())
    assert "does not run" not in empty.stderr and "made by another Python" not in empty.stdout
    assert (venv / "old").exists() and (venv / "bin" / "pip.log").read_text() == "install -q --upgrade pip\n"


def without_python() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHON"}


def pins_for(python: str) -> dict[str, list[str]]:
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    pins: dict[str, list[str]] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("#")[0].strip():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                assert [s.operator for s in req.specifier] == ["=="], line
                pins.setdefault(req.name, []).append(next(iter(req.specifier)).version)
    return pins


@pytest.mark.parametrize("python", HOST_PYTHONS)
def test_constraints_pin_one_release_of_each_requirement_for_every_host_python(python):
    """Each requirement of the host install (base, host and dev extras) that applies on `python` has exactly
    one pin there, inside the project's own range."""
    project = read_toml(ROOT / "pyproject.toml")["project"]
    extras = project["optional-dependencies"]
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux", "extra": ""}
    reqs = [Requirement(r) for r in [*project["dependencies"], *extras["host"], *extras["dev"]]]
    pins = pins_for(python)
    assert all(len(versions) == 1 for versions in pins.values()), pins
    for req in reqs:
        if req.marker is None or req.marker.evaluate(env):
            assert req.name in pins, f"{req.name} has no pin for Python {python}"
            assert pins[req.name][0] in req.specifier, f"{req.name}=={pins[req.name][0]} is outside {req}"
    assert ("tomli" in pins) == (python == "3.10")


def test_every_test_runs_under_the_hang_guard(request):
    """pytest-timeout is loaded (a dev requirement) and takes pyproject's limit: without the plugin the ini key
    is unknown, and a test that hangs would stall the run until CI's own limit rather than fail by name."""
    assert request.config.pluginmanager.has_plugin("timeout")
    limit = read_toml(ROOT / "pyproject.toml")["tool"]["pytest"]["ini_options"]["timeout"]
    assert float(request.config.getini("timeout")) == limit == 300


def test_a_test_s_own_wait_limit_keeps_the_hang_guard(hang_guard):
    """Two tests of a FIFO that would be waited on for ever set their own, shorter SIGALRM limit and then cancelled
    the process's one alarm timer (signal.alarm(0)), which is pytest-timeout's too: the rest of each test ran with
    no guard. Such a limit is conftest's hang_guard, which puts pytest-timeout's back; no test sets SIGALRM itself."""
    import re
    import signal
    import time

    from conftest import Hung

    before = signal.getitimer(signal.ITIMER_REAL)[0]
    assert 0 < before <= 300  # pytest-timeout's, running
    with pytest.raises(Hung, match="^waited$"), hang_guard(0.05, "waited"):
        time.sleep(5)
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= before
    with hang_guard(30, "not reached"):
        pass
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= before
    own = re.compile(r"signal\.(alarm|setitimer)\(|SIGALRM")
    tests = [p for p in sorted((ROOT / "tests").rglob("test_*.py")) if p.resolve() != Path(__file__).resolve()]
    assert [p.name for p in tests if own.search(p.read_text())] == []
