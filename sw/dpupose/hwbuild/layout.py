"""Where the hardware build puts things: ``build/hw/<config>/`` and the fixed Tcl scripts in ``hw/tcl/``.

build/hw/<config>/
  gen/        params.tcl, platform.xdc, dpu_conf.vh, prj_config, arch.json   (step generate)
  platform/   Vivado project and platform.xsa                              (step platform)
  kernel/     packaging project and dpu.xo                                 (step kernel)
  link/       v++ temporary folder and the linked dpu.xclbin               (step link)
  trd/        the DPU TRD parts unpacked from DPU_TRD when it is an archive
  logs/       one log per tool run       stamps/  one stamp per tool step
  dpu.bit dpu.hwh dpu.xclbin arch.json build_info.json                     (steps collect, report)
  previous/   the set published before the last rebuild (moved there when a tool step or collect re-runs)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dpupose.dpu.paths import hw_dir

DELIVERABLES = ("dpu.bit", "dpu.hwh", "dpu.xclbin", "arch.json")
PUBLISHED = (*DELIVERABLES, "build_info.json")  # what `report` publishes, and previous/ keeps


def tcl_dir() -> Path:
    return hw_dir() / "tcl"


@dataclass(frozen=True)
class BuildPaths:
    root: Path  # build/hw/<config>
    tcl: Path  # hw/tcl
    # Where the generated files are read from, if not root/gen: `hw status` generates them apart (in a temporary
    # folder) to compare what a build would generate with what the steps' stamps recorded.
    generated: Path | None = None

    @classmethod
    def for_config(cls, name: str, out: Path | None = None) -> BuildPaths:
        root = out if out is not None else Path("build") / "hw" / name
        return cls(root.resolve(), tcl_dir().resolve())

    @property
    def gen(self) -> Path:
        return self.generated if self.generated is not None else self.root / "gen"

    @property
    def params(self) -> Path:
        return self.gen / "params.tcl"

    @property
    def xdc(self) -> Path:
        return self.gen / "platform.xdc"  # platform.tcl reads it from beside params.tcl

    @property
    def dpu_conf(self) -> Path:
        return self.gen / "dpu_conf.vh"

    @property
    def prj_config(self) -> Path:
        return self.gen / "prj_config"

    @property
    def arch_json(self) -> Path:
        return self.gen / "arch.json"

    @property
    def platform_dir(self) -> Path:
        return self.root / "platform"

    @property
    def xsa(self) -> Path:
        return self.platform_dir / "platform.xsa"

    @property
    def kernel_dir(self) -> Path:
        return self.root / "kernel"

    @property
    def xo(self) -> Path:
        return self.kernel_dir / "dpu.xo"

    @property
    def link_dir(self) -> Path:
        return self.root / "link"

    @property
    def linked_xclbin(self) -> Path:
        return self.link_dir / "dpu.xclbin"

    @property
    def trd_dir(self) -> Path:
        return self.root / "trd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def stamps(self) -> Path:
        return self.root / "stamps"

    @property
    def build_info(self) -> Path:
        return self.root / "build_info.json"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    def deliverable(self, name: str) -> Path:
        return self.root / name

    @property
    def platform_tcl(self) -> Path:
        return self.tcl / "platform.tcl"

    @property
    def kernel_tcl(self) -> Path:
        return self.tcl / "kernel.tcl"
