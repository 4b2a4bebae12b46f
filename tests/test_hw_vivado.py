"""The hardware build with the real tools (marker `vivado`: deselected by default; run with `-m vivado`).

Needs Vivado/Vitis 2022.1 and XRT set up; the build steps also need DPU_TRD and BOARD_REPO in the
environment (see docs/hardware.md). The platform takes ~10-20 min, the kernel a few minutes; the full
link (1-2 h) runs only with DPUPOSE_HW_FULL=1.
"""

import json
import os
import shutil
import zipfile

import pytest

from dpupose import cli
from dpupose.hwbuild.tools import check_xrt, probe_vivado, probe_vpp

pytestmark = [
    pytest.mark.vivado,
    pytest.mark.skipif(shutil.which("vivado") is None, reason="Vivado is not on PATH (source settings64.sh)"),
]
CONFIG = "u96v2-b1600-pynq"


def needs(*variables):
    missing = [v for v in variables if not os.environ.get(v)]
    if missing:
        pytest.skip(f"set {', '.join(missing)} (see docs/hardware.md)")


def build(tmp_path, *steps):
    rc = cli.main(["hw", "build", "--config", CONFIG, "--out", str(tmp_path / CONFIG), *steps])
    assert rc == 0
    return tmp_path / CONFIG


def test_installed_tools_are_release_2022_1():
    assert probe_vivado().version.startswith("2022.1")
    assert probe_vpp().version.startswith("2022.1")
    assert os.path.isdir(check_xrt())


def test_hw_check_passes(capsys):
    needs("DPU_TRD", "BOARD_REPO")
    assert cli.main(["hw", "check", "--config", CONFIG]) == 0, capsys.readouterr().out


@pytest.mark.slow
def test_platform_step_writes_an_extensible_xsa(tmp_path):
    needs("BOARD_REPO")
    out = build(tmp_path, "--to", "platform")
    xsa = out / "platform" / "platform.xsa"
    with zipfile.ZipFile(xsa) as z:
        names = z.namelist()
        assert "xsa.json" in names
        assert any(n.endswith(".hwh") for n in names)


@pytest.mark.slow
def test_kernel_step_packages_the_dpuczdx8g_rtl_kernel(tmp_path):
    needs("DPU_TRD")
    out = build(tmp_path, "--from", "kernel", "--to", "kernel")
    with zipfile.ZipFile(out / "kernel" / "dpu.xo") as z:
        xml = [z.read(n).decode() for n in z.namelist() if n.endswith("kernel.xml")]
    assert xml and 'name="DPUCZDX8G"' in xml[0]


@pytest.mark.slow
def test_full_build_meets_timing(tmp_path):
    needs("DPU_TRD", "BOARD_REPO", "DPUPOSE_HW_FULL")
    out = build(tmp_path)
    info = json.loads((out / "build_info.json").read_text())
    assert info["timing"]["met"] and info["fingerprint"] == "0x101000016010404"
