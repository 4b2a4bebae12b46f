"""Run a Vivado Tcl script under the recording stand-in and rebuild the design it describes.

`run_standin` sources ``standin.tcl`` (the recording definitions of the Vivado commands) and then the
script, in Python's own Tcl interpreter (``tkinter.Tcl()``) when this Python has one, else in ``tclsh``.
`Design.from_calls` replays the recorded calls into a model of the block design: cells with their VLNV
and properties, nets (sets of pins and ports joined by ``connect_bd_net``), interface connections, ports,
project files and object properties. `dpupose.hwbuild.pfmcheck` checks that model.

API:
    run_standin(script, argv, engine="auto") -> StandinRun
    Design.from_calls(calls) -> Design
    tcl_engine() -> "tkinter" | "tclsh"
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dpupose.errors import ArtifactError, ToolNotFoundError
from dpupose.fsio import loads_json
from dpupose.hwbuild.tcllist import list_dict, split_list

STANDIN_TCL = Path(__file__).with_name("standin.tcl")


@dataclass(frozen=True)
class Call:
    index: int  # position in the recorded sequence
    name: str  # Vivado command, e.g. "connect_bd_net" or "ipx::package_project"
    args: tuple[str, ...]


@dataclass
class StandinRun:
    calls: list[Call]
    error: str | None  # the Tcl error that stopped the script, or None if it ran to the end
    output: str  # what the script printed with puts


def tcl_engine() -> str:
    """The Tcl interpreter available to run the stand-in: "tkinter" (in process) or "tclsh"."""
    try:
        import tkinter  # noqa: F401

        return "tkinter"
    except ImportError:
        pass
    if shutil.which("tclsh"):
        return "tclsh"
    raise ToolNotFoundError(
        "no Tcl interpreter to check the Vivado scripts with: install tcl (Debian/Ubuntu: "
        "`apt-get install tcl`) or use a Python built with tkinter"
    )


def run_standin(script: str | Path, argv: Sequence[str], engine: str = "auto") -> StandinRun:
    """Source `script` with `argv` (Vivado's -tclargs) under the stand-in; never raises for Tcl errors."""
    script = Path(script)
    engine = tcl_engine() if engine == "auto" else engine
    with tempfile.TemporaryDirectory(prefix="dpupose-standin-") as tmp:
        result = Path(tmp) / "result.json"
        if engine == "tkinter":
            import tkinter

            interp = tkinter.Tcl()
            interp.call("source", str(STANDIN_TCL))
            interp.call("::standin::run", str(script), tuple(str(a) for a in argv), str(result))
        elif engine == "tclsh":
            tclsh = shutil.which("tclsh")
            if not tclsh:
                raise ToolNotFoundError("tclsh is not on PATH: install tcl (`apt-get install tcl`)")
            cmd = [tclsh, str(STANDIN_TCL), str(result), str(script), *map(str, argv)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0 or not result.is_file():
                raise ArtifactError(f"tclsh could not run the stand-in: {proc.stderr.strip()[-500:]}")
        else:
            raise ValueError(f"unknown Tcl engine {engine!r}")
        data = loads_json(result.read_text(encoding="utf-8"))
    calls = [Call(i, c[0], tuple(c[1:])) for i, c in enumerate(data["calls"])]
    return StandinRun(calls, data["error"], data["output"])


def _options(args: Sequence[str], with_value: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Split Vivado-style arguments into {-option: value} (flags get "") and positional words."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1 and not a[1].isdigit():
            if a in with_value and i + 1 < len(args):
                opts[a] = args[i + 1]
                i += 2
                continue
            opts[a] = ""
        else:
            rest.append(a)
        i += 1
    return opts, rest


@dataclass
class Cell:
    path: str  # "/clk_wiz_0"
    vlnv: str  # as given to create_bd_cell, e.g. "xilinx.com:ip:clk_wiz"
    props: dict[str, str] = field(default_factory=dict)
    automation: list[tuple[str, str]] = field(default_factory=list)  # (rule, config)

    @property
    def ip(self) -> str:
        """The IP name of the VLNV (vendor:library:name[:version] -> name)."""
        parts = self.vlnv.split(":")
        return parts[2] if len(parts) >= 3 else self.vlnv


@dataclass
class Design:
    calls: list[Call]
    cells: dict[str, Cell] = field(default_factory=dict)
    ports: dict[str, dict[str, str]] = field(default_factory=dict)  # "/fan_en_b" -> create_bd_port options
    props: dict[str, dict[str, str]] = field(default_factory=dict)  # object -> property -> value
    params: dict[str, str] = field(default_factory=dict)  # set_param
    files: list[tuple[str, str]] = field(default_factory=list)  # (fileset, path) from add_files
    intf_nets: list[tuple[str, str]] = field(default_factory=list)
    project: dict[str, str] = field(default_factory=dict)  # name, dir, part
    _parent: dict[str, str] = field(default_factory=dict)

    # Nets: union-find over pin and port paths ---------------------------------------------------------
    def _find(self, x: str) -> str:
        self._parent.setdefault(x, x)
        while self._parent[x] != x:
            self._parent[x] = self._parent[self._parent[x]]
            x = self._parent[x]
        return x

    def _join(self, endpoints: Sequence[str]) -> None:
        roots = [self._find(e) for e in endpoints]
        for r in roots[1:]:
            self._parent[r] = roots[0]

    def net(self, endpoint: str) -> set[str]:
        """Every pin/port on the same net as `endpoint` (just itself if it is unconnected)."""
        if endpoint not in self._parent:
            return {endpoint}
        root = self._find(endpoint)
        return {e for e in self._parent if self._find(e) == root}

    def connected(self, a: str, b: str) -> bool:
        return a in self._parent and b in self._parent and self._find(a) == self._find(b)

    def endpoints(self) -> set[str]:
        return set(self._parent)

    def intf_peers(self, pin: str) -> set[str]:
        return {b if a == pin else a for a, b in self.intf_nets if pin in (a, b)}

    def cells_of(self, ip: str) -> list[Cell]:
        return [c for c in self.cells.values() if c.ip == ip]

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    # Replay -------------------------------------------------------------------------------------------
    @classmethod
    def from_calls(cls, calls: Sequence[Call]) -> Design:
        d = cls(list(calls))
        for call in calls:
            handler = getattr(d, "_on_" + call.name.replace("::", "_"), None)
            if handler is not None:
                handler(call.args)
        return d

    def _on_create_project(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-part"])
        self.project = {"name": rest[0] if rest else "", "dir": rest[1] if len(rest) > 1 else ""}
        self.project["part"] = opts.get("-part", "")

    def _on_set_param(self, args: Sequence[str]) -> None:
        if len(args) >= 2:
            self.params[args[0]] = args[1]

    def _on_create_bd_cell(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-type", "-vlnv"])
        path = "/" + rest[-1].strip("/")
        self.cells[path] = Cell(path, opts.get("-vlnv", ""))

    def _on_create_bd_port(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-dir", "-type", "-from", "-to", "-freq_hz"])
        self.ports["/" + rest[-1].strip("/")] = opts

    def _on_apply_bd_automation(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-rule", "-config"])
        for obj in (o for word in rest for o in split_list(word)):
            if obj in self.cells:
                self.cells[obj].automation.append((opts.get("-rule", ""), opts.get("-config", "")))

    def _on_set_property(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-dict", "-name", "-value"])
        if "-dict" in opts:
            values = list_dict(opts["-dict"])
            objects = rest
        elif len(rest) >= 3:
            values = {rest[0]: rest[1]}
            objects = rest[2:]
        else:
            return
        for obj in (o for word in objects for o in split_list(word)):
            self.props.setdefault(obj, {}).update(values)
            if obj in self.cells:
                self.cells[obj].props.update(values)

    def _on_connect_bd_net(self, args: Sequence[str]) -> None:
        _, rest = _options(args, ["-net"])
        self._join([o for word in rest for o in split_list(word)])

    def _on_connect_bd_intf_net(self, args: Sequence[str]) -> None:
        _, rest = _options(args, ["-boundary_type", "-intf_net"])
        objs = [o for word in rest for o in split_list(word)]
        if len(objs) == 2:
            self.intf_nets.append((objs[0], objs[1]))

    def _on_add_files(self, args: Sequence[str]) -> None:
        opts, rest = _options(args, ["-fileset"])
        for path in (o for word in rest for o in split_list(word)):
            self.files.append((opts.get("-fileset", "sources_1"), path))
