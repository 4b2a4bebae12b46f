"""Recording fakes of vivado and v++, a fake DPU TRD archive and fake board files, for the hw build tests.

The fake tools are small Python scripts put first on PATH. Each appends its arguments to the file in
$FAKE_TOOL_LOG, answers the version queries, and writes the files the real tool would: platform.xsa,
dpu.xo (carrying dpu_conf.vh's fingerprint), and for v++ the xclbin plus the Vivado project tree the
collect step reads (bitstream, .hwh, arch.json with the .xo's fingerprint, routed reports copied from
tests/data/hwbuild). $FAKE_FAIL=<platform|kernel|link> makes that step exit 1; $FAKE_VIVADO_BANNER
replaces Vivado's version line; $FAKE_TIMING_RPT picks the timing report.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

DATA = Path(__file__).parent / "data" / "hwbuild"

_COMMON = """\
import json, os, re, sys
from pathlib import Path
argv = sys.argv[1:]
with open(os.environ["FAKE_TOOL_LOG"], "a") as f:
    f.write(json.dumps([Path(sys.argv[0]).name, *argv]) + "\\n")
def fail(step):
    if os.environ.get("FAKE_FAIL") == step:
        print(f"ERROR: [Common 17-39] fake {step} failure")
        sys.exit(1)
"""

FAKE_VIVADO = (
    _COMMON
    + """\
if argv == ["-version"]:
    print(os.environ.get("FAKE_VIVADO_BANNER", "Vivado v2022.1 (64-bit)"))
    print("SW Build 3526262 on Mon Apr 18 15:47:01 MDT 2022")
    sys.exit(0)
script = Path(argv[argv.index("-source") + 1]).name
tclargs = argv[argv.index("-tclargs") + 1:]
print(f"source {script}")
if script == "platform.tcl":
    fail("platform")
    Path(tclargs[2]).write_text("fake platform xsa\\n")
elif script == "kernel.tcl":
    fail("kernel")
    fp = re.search(r"fingerprint (0x[0-9a-f]+)", Path(tclargs[2]).read_text()).group(1)
    Path(tclargs[3]).write_text(json.dumps({"fingerprint": fp}))
else:
    sys.exit(f"fake vivado: unknown script {script}")
"""
)

FAKE_VPP = (
    _COMMON
    + """\
import shutil
if argv == ["--version"]:
    print("****** v++ v2022.1 (64-bit)")
    print("  **** SW Build 3524075 on 2022-04-13-17:42:45")
    sys.exit(0)
assert argv[:4] == ["-l", "-t", "hw", "--platform"], argv
fail("link")
temp = Path(argv[argv.index("--temp_dir") + 1])
xo = json.loads(Path(argv[-1]).read_text())
prj = temp / "link/vivado/vpl/prj"
impl = prj / "prj.runs/impl_1"
bd = prj / "prj.gen/sources_1/bd/dpu_platform"
for d in (impl, bd / "hw_handoff", bd / "ip/dpu_platform_DPUCZDX8G_1_0"):
    d.mkdir(parents=True, exist_ok=True)
(impl / "dpu_platform_wrapper.bit").write_bytes(b"fake bitstream")
(bd / "hw_handoff/dpu_platform.hwh").write_text("<MODULE MODTYPE=\\"DPUCZDX8G\\"/>")
(bd / "ip/dpu_platform_DPUCZDX8G_1_0/arch.json").write_text(json.dumps({"fingerprint": xo["fingerprint"]}))
data = Path(os.environ["FAKE_DATA"])
timing = os.environ.get("FAKE_TIMING_RPT", "timing_met.rpt")
shutil.copy(data / timing, impl / "dpu_platform_wrapper_timing_summary_routed.rpt")
shutil.copy(data / "utilization_placed.rpt", impl / "dpu_platform_wrapper_utilization_placed.rpt")
Path(argv[argv.index("-o") + 1]).write_bytes(b"xclbin2\\0" + b"fake")
"""
)


def install_fake_tools(bin_dir: Path, monkeypatch) -> Path:
    """Put fake vivado and v++ first on PATH; returns the call log (one JSON list per call)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (("vivado", FAKE_VIVADO), ("v++", FAKE_VPP)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + body)
        path.chmod(0o755)
    log = bin_dir / "calls.jsonl"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    monkeypatch.setenv("FAKE_DATA", str(DATA))
    xrt = bin_dir / "xrt"
    xrt.mkdir(exist_ok=True)
    monkeypatch.setenv("XILINX_XRT", str(xrt))
    for var in ("FAKE_FAIL", "FAKE_VIVADO_BANNER", "FAKE_TIMING_RPT", "DPU_TRD", "BOARD_REPO"):
        monkeypatch.delenv(var, raising=False)
    return log


def tool_calls(log: Path) -> list[list[str]]:
    """The recorded calls, without version queries: [tool, step-ish argv...]."""
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [c for c in calls if c[1:] not in (["-version"], ["--version"])]


def step_of(call: list[str]) -> str:
    if call[0] == "v++":
        return "link"
    return Path(call[call.index("-source") + 1]).stem  # platform / kernel


def make_trd_archive(path: Path, names, top: str = "DPUCZDX8G") -> Path:
    """A tar.gz holding `names` (relative TRD paths) under `top`/, each file a line of text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = f"// {name}\n".encode()
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_board_repo(root: Path, version: str = "1.2", vendor: str = "avnet.com") -> Path:
    """A board repository holding ultra96v2/<version>/board.xml (Avnet bdf layout)."""
    xml = root / "ultra96v2" / version / "board.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.write_text(
        f'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<board schema_version="2.1" vendor="{vendor}" name="Ultra96v2" display_name="Ultra96v2">\n'
        f"  <file_version>{version}</file_version>\n</board>\n"
    )
    return root
