"""The package as a user installs it: what its wheel carries, and host tools run from the wheel alone
(no checkout on the path, run from another folder)."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from dpupose.board.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked as pip would into site-packages."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def run_installed(site: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DPUPOSE_HW_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_wheel_carries_the_repositorys_hw_folder(wheel):
    """DPU configurations, board records, the performance model's tables and the hardware build's Tcl:
    every file of hw/, byte for byte."""
    hw = ROOT / "hw"
    files = [p for p in hw.rglob("*") if p.is_file()]
    expected = {f"dpupose/resources/hw/{p.relative_to(hw).as_posix()}": p.read_bytes() for p in files}
    assert {"dpupose/resources/hw/dpu/perf/calibration.csv", "dpupose/resources/hw/tcl/platform.tcl"} <= set(expected)
    with zipfile.ZipFile(wheel) as zf:
        carried = {n: zf.read(n) for n in zf.namelist() if n.startswith("dpupose/resources/hw/")}
    assert carried == expected


def test_host_tools_run_from_the_installed_wheel(installed, tmp_path):
    found = run_installed(installed, "-c", "from dpupose.dpu.paths import hw_dir; print(hw_dir())", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == installed / "dpupose" / "resources" / "hw"
    argv = ("-m", "dpupose", "dpu", "fit", "--config", "u96v2-b1600-pynq", "--json")
    fit = run_installed(installed, *argv, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    report = json.loads(fit.stdout)
    assert report["config"] == "u96v2-b1600-pynq" and report["board"] == "ultra96v2" and report["fits"] is True


def test_the_wheel_takes_its_version_from_the_package(wheel, tmp_path):
    """One version: the wheel's metadata and file name say what `dpupose --version`, the manifests and the
    staged scripts say (dpupose.__version__), also after it changes."""
    import dpupose
    from dpupose.board.wheel import build_wheel

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert f"\nVersion: {dpupose.__version__}\n" in meta
    assert wheel.name == f"dpupose-{dpupose.__version__}-py3-none-any.whl"
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "sw" / "dpupose", root / "sw" / "dpupose", ignore=shutil.ignore_patterns("__pycache__"))
    init = root / "sw" / "dpupose" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{dpupose.__version__}"', '__version__ = "9.8.7"'))
    assert build_wheel(tmp_path / "out", root=root).name == "dpupose-9.8.7-py3-none-any.whl"


def test_the_sdist_holds_the_package_and_nothing_else(tmp_path):
    """What the wheel is built from (the package, hw/ included, its metadata and licence); not the test
    modules, which setuptools would add by their names and which run only in the repository."""
    root = tmp_path / "repo"
    root.mkdir()
    top = {n for n in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in") if (ROOT / n).is_file()}
    for name in top:
        shutil.copy(ROOT / name, root / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "sw" / "dpupose", root / "sw" / "dpupose", ignore=junk)
    shutil.copytree(ROOT / "tests", root / "tests", ignore=shutil.ignore_patterns("__pycache__", "data", "fakes"))
    package = {p.relative_to(root).as_posix() for p in (root / "sw" / "dpupose").rglob("*") if p.is_file()}
    build = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    argv = [sys.executable, "-c", build, str(tmp_path / "dist")]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / "dist" / proc.stdout.split()[-1]) as tf:
        names = {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()}
    meta = {n for n in names if n.startswith("sw/dpupose.egg-info/")}
    assert "sw/dpupose/resources/hw/dpu/perf/calibration.csv" in package
    assert names - meta == package | top | {"PKG-INFO", "setup.cfg"}
