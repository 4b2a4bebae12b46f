"""The AMD/Xilinx tools the build needs, their versions, and what to do when one is missing.

Vivado and v++ must both be release 2022.1 (the one PYNQ 3.0.1, pynq-dpu 2.5.1 and Vitis AI 2.5 were
built with); XRT must be set up (``XILINX_XRT``), as the DPU-PYNQ flow requires. A wrong release stops
the build before the long run with the reason and what to source instead.

API:
    parse_vivado_version(text) / parse_vpp_version(text) -> "2022.1" | None
    probe_vivado() / probe_vpp() -> ToolInfo        check_xrt() -> str
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from dpupose.errors import ToolNotFoundError
from dpupose.fsio import what_is_at
from dpupose.hwbuild.commands import VIVADO, VPP, vivado_version_argv, vpp_version_argv
from dpupose.hwbuild.params import VIVADO_VERSION
from dpupose.hwbuild.runner import query_tool

INSTALL = {
    VIVADO: (
        f"install Vivado {VIVADO_VERSION} (AMD Unified Installer {VIVADO_VERSION}, Vitis edition) and run "
        f"`source <install dir>/Vitis/{VIVADO_VERSION}/settings64.sh` (it puts vivado and v++ on PATH)"
    ),
    VPP: (
        f"v++ comes with Vitis {VIVADO_VERSION}: install it and run "
        f"`source <install dir>/Vitis/{VIVADO_VERSION}/settings64.sh`"
    ),
    "xrt": (
        f"install XRT {VIVADO_VERSION} (package xrt_202210, version 2.13) and run "
        "`source /opt/xilinx/xrt/setup.sh` (sets XILINX_XRT)"
    ),
}


@dataclass(frozen=True)
class ToolInfo:
    name: str
    path: str
    version: str  # "2022.1"
    banner: str  # first line of the version output, recorded in build_info.json


def parse_vivado_version(text: str) -> str | None:
    """'Vivado v2022.1 (64-bit)' -> '2022.1' (a patch suffix such as v2022.1.2 is kept: '2022.1.2')."""
    m = re.search(r"\bVivado v(\d{4}\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def parse_vpp_version(text: str) -> str | None:
    """'****** v++ v2022.1 (64-bit)' -> '2022.1'."""
    m = re.search(r"\bv\+\+ v(\d{4}\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def _release_matches(version: str) -> bool:
    return version == VIVADO_VERSION or version.startswith(VIVADO_VERSION + ".")


def _probe(name: str, argv: list[str], parse: object) -> ToolInfo:
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(f"{name} is not on PATH: {INSTALL[name]}")
    text = query_tool(argv)
    version = parse(text)  # type: ignore[operator]
    banner = next((line.strip(" *") for line in text.splitlines() if line.strip(" *")), "")
    if version is None:
        raise ToolNotFoundError(f"{path} did not report a version ({banner!r}); {INSTALL[name]}")
    if not _release_matches(version):
        raise ToolNotFoundError(
            f"{name} on PATH is release {version} ({path}); this flow needs {VIVADO_VERSION} (what PYNQ 3.0.1 "
            f"and pynq-dpu 2.5.1 use): {INSTALL[name]}"
        )
    return ToolInfo(name, path, version, banner)


def probe_vivado() -> ToolInfo:
    return _probe(VIVADO, vivado_version_argv(), parse_vivado_version)


def probe_vpp() -> ToolInfo:
    return _probe(VPP, vpp_version_argv(), parse_vpp_version)


def check_xrt() -> str:
    """The XRT install folder ($XILINX_XRT), or ToolNotFoundError saying how to set it up."""
    root = os.environ.get("XILINX_XRT", "")
    if not root:
        raise ToolNotFoundError(f"XILINX_XRT is not set: {INSTALL['xrt']}")
    if not os.path.isdir(root):
        what = what_is_at(root)
        raise ToolNotFoundError(
            f"XILINX_XRT={root}: no such folder: {INSTALL['xrt']}"
            if what == "nothing"
            else f"XILINX_XRT={root} is {what}, not a folder: {INSTALL['xrt']}"
        )
    return root
