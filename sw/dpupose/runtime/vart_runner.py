"""`VartRunner`: one DPU subgraph of a compiled .xmodel on the board's DPU through VART.

Board only (PYNQ 3.0.1 + pynq-dpu 2.5.1). `pynq_dpu`, `vart` and `xir` are imported inside functions;
`pynq_dpu` first, because importing it puts VART's Python modules on the path.

- The overlay (`dpu.bit` with `dpu.hwh` and `dpu.xclbin` beside it) is loaded once per process with
  `pynq_dpu.DpuOverlay(bitfile)`, which programs the PL and copies the xclbin to /usr/lib for VART.
  PYNQ 3.0.1 sees the board's device only when XILINX_XRT is set as pynq is imported (PYNQ's
  /etc/profile.d/xrt_setup.sh sets it for login shells; a command given to ssh or a systemd unit has
  none), so that is checked first.
- `pynq_dpu`'s own `load_model` accepts an xmodel with exactly one DPU subgraph. A split model can have
  several, so runners are made here from the xmodel directly: `xir.Graph.deserialize(path)`, root
  subgraph -> child subgraphs whose "device" attribute is "DPU", `vart.Runner.create_runner(sg, "run")`.
- Tensors are exchanged as int8 NHWC numpy arrays (VART's own layout); the scale is the tensor's
  "fix_point" attribute (real = int8 * 2**-fix_point). Passing int8 keeps VART from converting on the CPU.
  VART's binding takes each buffer as a writable pointer to the whole tensor (dims, batch dims[0]) and
  checks neither shape nor strides, so buffers are made exactly so here.
- `execute_async(inputs, outputs)` returns a (job id, status) pair; every job is waited with `wait(job)`.
- XIR and VART report most errors through glog's FATAL, which aborts the process: nothing here can catch
  them, so what would make them abort is checked first (an xmodel protobuf cannot parse: check_xmodel_file).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpupose.board.layout import PYNQ_VENV_PROFILE, XRT_PROFILE
from dpupose.errors import DataError, DeviceError, ModelFileError, ToolNotFoundError
from dpupose.fsio import not_a_file, same_file
from dpupose.runtime.base import Runner, TensorInfo

log = logging.getLogger(__name__)

BOARD_HINT = (
    "the vart backend runs on the board with pynq-dpu installed; on a PC use the emulate backend "
    '(--backend emulate; backend="emulate" in PoseSession)'
)
VART_CONF = Path("/etc/vart.conf")
XCLBIN_DIR = Path("/usr/lib")  # where pynq_dpu 2.5.1 copies dpu.xclbin

_overlay: dict[str, Any] = {}  # bitfile path -> DpuOverlay: a process programs the PL once
# VART 2.5 holds a lockf lock on /tmp/DPU_<device> (its FileLock) while a process has a DPU runner; another
# process's runner waits for it, for as long as that process lives.
VART_LOCK_DIR = Path("/tmp")
# VartRunners of this process that hold a VART runner (neither closed nor collected: a dropped one lets VART's runner
# go with it): while there are any, VART holds that lock
_live_runners: weakref.WeakSet[VartRunner] = weakref.WeakSet()
_live_lock = threading.Lock()
_probe_fds: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a lock file -> dpu_lock_holder's descriptor


def import_board_modules() -> tuple[Any, Any, Any]:
    """(pynq_dpu, vart, xir), or ToolNotFoundError saying where the vart backend runs."""
    try:
        import pynq_dpu  # puts VART's Python modules (vart, xir) on sys.path
        import vart
        import xir
    except ImportError as exc:
        raise ToolNotFoundError(f"{BOARD_HINT} (import failed: {exc})") from None
    return pynq_dpu, vart, xir


def overlay_bitfile(overlay: str | Path) -> Path:
    """The dpu.bit of an overlay folder (or the .bit file itself), checking its sibling files."""
    path = Path(overlay)
    bit = path / "dpu.bit" if path.is_dir() else path
    if bit.suffix != ".bit" or not bit.is_file():
        raise ModelFileError(
            f"no overlay bitstream at {bit}: pass --overlay with the folder holding dpu.bit, dpu.hwh and "
            "dpu.xclbin (built with `make hw DPU=<config>`)"
        )
    seen_as = bit.name.rstrip(".bit")  # how pynq_dpu 2.5.1 (DpuOverlay.copy_xclbin) finds the .xclbin
    if seen_as != bit.stem:
        raise ModelFileError(
            f"pynq_dpu looks for {seen_as}.xclbin beside {bit.name}, not {bit.stem}.xclbin (it strips the letters "
            "b, i, t from the end of the name): rename the overlay files, e.g. to dpu.bit, dpu.hwh, dpu.xclbin"
        )
    missing = [s for s in (".hwh", ".xclbin") if not bit.with_suffix(s).is_file()]
    if missing:
        raise ModelFileError(
            f"overlay {bit} needs {', '.join(bit.stem + s for s in missing)} beside it "
            "(pynq needs the .hwh; pynq_dpu copies the .xclbin for VART)"
        )
    return bit


# /etc/vart.conf as VART's SimpleConfig reads it (vitis/ai/simple_config.cpp): a line "KEY: VALUE" (spaces only,
# no tabs, around the colon and at the ends; '#' starts a comment anywhere in the value), a comment line, a blank
# line; any other line is skipped with "unknown config" (so is a line ending in a carriage return: the regex's '.'
# stops there). A key defined twice makes VART abort.
_CONF_LINE = re.compile(r" *([^: ]+) *: *([^\r\n]*?) *(#[^\r\n]*)*")
DEFAULT_FIRMWARE = "/usr/lib/dpu.xclbin"  # VART's own default, and where pynq_dpu copies dpu.bit's xclbin


def vart_firmware(conf: Path | None = None) -> tuple[str, str, str]:
    """(the xclbin VART will load, what says so: "env", "conf" or "default", a note on where), found as VART
    finds it: $XLNX_VART_FIRMWARE when set and not empty, else /etc/vart.conf's `firmware` (VART_CONF, read
    when called), else VART's default. DeviceError where VART itself would stop reading the file (abort)."""
    env = os.environ.get("XLNX_VART_FIRMWARE", "")
    if env:
        return env, "env", "XLNX_VART_FIRMWARE"
    conf = VART_CONF if conf is None else conf
    try:
        if not conf.is_file() or conf.stat().st_size == 0:
            return DEFAULT_FIRMWARE, "default", f"{conf} names none"
        lines = conf.read_bytes().decode("utf-8", errors="replace").split("\n")
    except OSError as exc:
        raise DeviceError(f"cannot read {conf} (which firmware VART loads): {exc.strerror or exc}") from None
    values: dict[str, tuple[str, int]] = {}
    unread = None  # the first line naming the firmware that VART skips ("unknown config")
    for number, line in enumerate(lines, 1):
        match = _CONF_LINE.fullmatch(line)
        if match is None:
            if unread is None and "firmware" in line and not line.lstrip(" ").startswith("#"):
                unread = number
            continue  # a comment, a blank line, or a line VART skips as "unknown config"
        key, value = match.group(1), match.group(2)
        if key in values:
            raise DeviceError(
                f"{conf} line {number} defines {key!r} a second time, and VART stops (abort) on a key defined "
                f"twice: keep one line 'firmware: {DEFAULT_FIRMWARE}' (or the overlay's xclbin) in {conf}"
            )
        values[key] = value, number
    if "firmware" in values:
        value, number = values["firmware"]
        return value, "conf", f"{conf} line {number}"
    others = [key for key in values if key.startswith("firmware")]
    if others:  # VART's has("firmware") takes any key starting so, then finds no "firmware" and aborts
        raise DeviceError(
            f"{conf} has {others[0]!r} but no 'firmware' line, and VART stops (abort) reading it: rename the "
            f"line to 'firmware: ...' or remove it"
        )
    if unread is not None:
        return (
            DEFAULT_FIRMWARE,
            "default",
            (f"{conf} line {unread} is no line VART reads: 'firmware: PATH' with spaces, no tab, no carriage return"),
        )
    return DEFAULT_FIRMWARE, "default", f"{conf} names none"


def _same_path(a: str, b: str) -> bool:
    # same_file is False where either is missing (pynq_dpu copies the overlay's xclbin only when it programs it) or
    # holds a NUL byte (a damaged vart.conf's value: no file of that name to be the xclbin).
    return os.path.normpath(a) == os.path.normpath(b) or same_file(a, b)


def check_vart_conf(xclbin_name: str, conf: Path | None = None) -> None:
    """VART loads the firmware vart_firmware names; it must be the xclbin pynq_dpu copies for this overlay
    (XCLBIN_DIR / xclbin_name)."""
    conf = VART_CONF if conf is None else conf
    firmware, said_by, where = vart_firmware(conf)
    expected = str(XCLBIN_DIR / xclbin_name)
    if _same_path(firmware, expected):
        return
    if said_by == "env":
        what = f"XLNX_VART_FIRMWARE points VART at another firmware ({firmware!r})"
        fix = f"unset XLNX_VART_FIRMWARE (VART then reads {conf}), or set it to {expected}"
    elif said_by == "conf":
        what = f"{conf} points VART at another firmware ({firmware!r}, {where})"
        fix = f"echo 'firmware: {expected}' | sudo tee {conf}"
    else:
        what = f"VART loads its default firmware {firmware} ({where})"
        fix = f"echo 'firmware: {expected}' | sudo tee {conf}"
    raise DeviceError(
        f"{what}, not {expected} that the overlay installs; running would use a mismatched xclbin. Fix: {fix}"
    )


def load_overlay(overlay: str | Path) -> Any:
    """Program the DPU overlay once per process; later calls return the same DpuOverlay."""
    bit = overlay_bitfile(overlay)
    key = str(bit.resolve())
    if key not in _overlay:
        pynq_dpu, _, _ = import_board_modules()
        if not os.environ.get("XILINX_XRT"):
            raise DeviceError(
                f"XILINX_XRT is not set, so PYNQ finds no device to load {bit} on: run in PYNQ's environment, "
                f"e.g. sudo bash -c 'source {XRT_PROFILE} && source {PYNQ_VENV_PROFILE} && dpupose run ...'"
            )
        check_vart_conf(bit.stem + ".xclbin")
        log.info("loading DPU overlay %s", bit)
        try:
            _overlay[key] = pynq_dpu.DpuOverlay(str(bit))
        except Exception as exc:  # pynq raises plain exceptions for unreadable bitstreams, missing .hwh...
            raise DeviceError(f"cannot load overlay {bit}: {exc}") from None
    return _overlay[key]


def dpu_subgraphs(graph: Any) -> list[Any]:
    """The root subgraph's children whose "device" is DPU, in topological order."""
    root = graph.get_root_subgraph()
    if root is None or root.is_leaf:
        return []
    return [
        sg
        for sg in root.toposort_child_subgraph()
        if sg.has_attr("device") and str(sg.get_attr("device")).upper() == "DPU"
    ]


def check_xmodel_file(path: Path) -> None:
    """ModelFileError for a file XIR cannot parse as an xmodel: `xir.Graph.deserialize` does not raise on
    one, it aborts the process (see xmodel_wire)."""
    from dpupose.runtime.xmodel_wire import problem

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read xmodel {path}: {exc.strerror or exc}") from None
    if not data:
        raise ModelFileError(f"xmodel {path} is empty: copy it again, or compile it again with vai_c_xir")
    found = problem(data)
    if found is not None:
        raise ModelFileError(
            f"{path} is not an xmodel XIR can read (as its protobuf: {found}), and XIR would stop the process "
            "on it: give the .xmodel vai_c_xir compiled, or copy it again if it was cut short"
        )


class Xmodel:
    """A deserialized .xmodel (kept alive while runners use its subgraphs)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            what = not_a_file(self.path, "")
            if not what:
                raise ModelFileError(f"xmodel {self.path} is missing: compile the DPU subgraphs with Vitis AI first")
            # a folder, a FIFO, a link that leads nowhere: the user sees something at the name, not a missing file
            raise ModelFileError(
                f"xmodel {self.path} {what}: put the .xmodel vai_c_xir compiled there (copy the plan folder again)"
            )
        _, _, xir = import_board_modules()
        check_xmodel_file(self.path)
        try:
            self.graph = xir.Graph.deserialize(str(self.path))
        except Exception as exc:  # what XIR does not stop the process on (check_xmodel_file: most of it does)
            raise ModelFileError(f"cannot read xmodel {self.path}: {exc}") from None
        self.subgraphs = dpu_subgraphs(self.graph)
        if not self.subgraphs:
            raise ModelFileError(f"xmodel {self.path} has no DPU subgraph: was it compiled with vai_c_xir?")

    def names(self) -> list[str]:
        return [sg.get_name() for sg in self.subgraphs]

    def subgraph(self, name: str | None) -> Any:
        """The DPU subgraph called `name`; with None, the only one (an error if there are several)."""
        if name is None:
            if len(self.subgraphs) > 1:
                raise ModelFileError(
                    f"xmodel {self.path} has {len(self.subgraphs)} DPU subgraphs ({', '.join(self.names())}): "
                    "the plan must name one with xmodel_subgraph"
                )
            return self.subgraphs[0]
        for sg in self.subgraphs:
            if sg.get_name() == name:
                return sg
        raise ModelFileError(
            f"xmodel {self.path} has no DPU subgraph {name!r} (it has {', '.join(self.names())}): "
            "re-split or recompile so that plan and xmodel match"
        )

    def fingerprints(self) -> dict[str, int | None]:
        """DPU subgraph name -> its "dpu_fingerprint" attribute (None for xmodels that lack it)."""
        return {
            sg.get_name(): int(sg.get_attr("dpu_fingerprint")) if sg.has_attr("dpu_fingerprint") else None
            for sg in self.subgraphs
        }


def dpu_lock_holder(lock_dir: Path | None = None) -> tuple[Path, int] | None:
    """(the lock file, the process id) of another process that holds VART's lock on a DPU, or None (a lock
    this process holds is not seen: F_GETLK reports only other processes' locks). Each lock file is opened
    once and its descriptor kept for the life of the process: closing any descriptor of a file lets go of a
    POSIX lock this process holds on it, as VART does while a runner is alive (one another thread is making
    now, one a closed VartRunner's job still keeps, one of pynq_dpu's own)."""
    import fcntl  # Linux, as VART

    lock_dir = VART_LOCK_DIR if lock_dir is None else lock_dir
    for path in sorted(lock_dir.glob("DPU_*")):
        try:
            st = os.stat(path)
            fd = _probe_fds.get((st.st_dev, st.st_ino))
            if fd is None:
                fd = _probe_fds[(st.st_dev, st.st_ino)] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # gone, or not ours to read: VART would open it for writing and fail (abort) anyway
        try:
            probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)  # struct flock: the whole file
            kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        except OSError:
            continue
        if kind != fcntl.F_UNLCK:
            return path, pid
    return None


def _process_name(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    return f" ({text[:120]})" if text else ""


def check_runnable(subgraph: Any, where: str) -> None:
    """What VART 2.5's Runner::create_runner would abort the process on, refused first: no overlay programmed
    by this process (VART then finds no DPU compute unit, or drives a PL that holds none), and a subgraph
    without the "runner" attribute (library per mode) naming one for mode "run", which vai_c_xir gives each
    DPU subgraph. And where it would wait for as long as another process lives: that one holds the DPU."""
    if not _overlay:
        raise DeviceError(
            f"{where}: no DPU overlay was loaded in this process, and VART stops the process (abort) when it "
            "finds no DPU: load it first with load_overlay(OVERLAY) (PoseSession and `dpupose run --backend "
            "vart --overlay OVERLAY` do)"
        )
    with _live_lock:
        held = dpu_lock_holder() if len(_live_runners) == 0 else None
    if held is not None:
        path, pid = held
        # F_GETLK gives 0 for a holder in another PID namespace (a container), whose number this one cannot see
        who = f"process {pid}{_process_name(pid)}" if pid > 0 else "a process in another container"
        raise DeviceError(
            f"{where}: the DPU is in use by {who} (it holds VART's lock {path}), "
            "and VART would wait without a word until that process ends: stop it (a notebook's kernel: Kernel > "
            "Shut Down Kernel) or let it finish, then run again"
        )
    runners = subgraph.get_attr("runner") if subgraph.has_attr("runner") else {}
    if not isinstance(runners, dict) or "run" not in runners:
        raise ModelFileError(
            f"{where}: the DPU subgraph names no VART runner for mode 'run' (its \"runner\" attribute is "
            f"{runners!r}), and VART stops the process (abort) on it: compile the xmodel again with vai_c_xir"
        )


def _tensor_info(tensor: Any, name: str, where: str) -> TensorInfo:
    if str(tensor.dtype).lower() != "xint8":
        raise ModelFileError(f"{where}: tensor {tensor.name!r} is {tensor.dtype}, expected xint8")
    if not tensor.has_attr("fix_point"):
        raise ModelFileError(f"{where}: tensor {tensor.name!r} has no fix_point attribute")
    return TensorInfo(name, tuple(int(d) for d in tensor.dims), "int8", int(tensor.get_attr("fix_point")), "NHWC")


def bind_names(vart_tensors: Sequence[Any], wanted: Sequence[TensorInfo] | None, where: str) -> list[str]:
    """The plan's names for VART's tensors: by equal name, else by unique per-sample shape, else by order."""
    vnames = [t.name for t in vart_tensors]
    if not wanted:
        return vnames
    if len(wanted) != len(vart_tensors):
        raise ModelFileError(
            f"{where}: the xmodel has {len(vart_tensors)} tensors ({', '.join(vnames)}) where the plan has "
            f"{len(wanted)} ({', '.join(w.name for w in wanted)}); recompile the xmodel from this split"
        )
    if set(vnames) == {w.name for w in wanted}:
        return vnames
    shapes = [tuple(int(d) for d in t.dims)[1:] for t in vart_tensors]
    want_shapes = [tuple(w.shape[1:]) for w in wanted]
    if len(set(shapes)) == len(shapes) and sorted(shapes) == sorted(want_shapes):
        return [wanted[want_shapes.index(s)].name for s in shapes]
    for s, w in zip(shapes, want_shapes):
        if s != w:
            raise ModelFileError(f"{where}: xmodel tensor shapes {shapes} do not match the plan's {want_shapes}")
    return [w.name for w in wanted]


class VartRunner(Runner):
    """A VART runner on one DPU subgraph (int8 NHWC in and out, fix points from the xmodel)."""

    def __init__(
        self,
        xmodel: Xmodel,
        subgraph_name: str | None = None,
        inputs: Sequence[TensorInfo] | None = None,
        outputs: Sequence[TensorInfo] | None = None,
    ) -> None:
        _, vart, _ = import_board_modules()
        self.xmodel = xmodel  # keeps the xir graph alive
        self.subgraph = xmodel.subgraph(subgraph_name)
        self.name = self.subgraph.get_name()
        where = f"{xmodel.path.name}:{self.name}"
        check_runnable(self.subgraph, where)
        try:
            self._runner = vart.Runner.create_runner(self.subgraph, "run")
        except Exception as exc:  # what VART raises (its own checks abort: check_runnable comes first)
            raise DeviceError(f"cannot create a VART runner for {where}: {exc}") from None
        with _live_lock:
            _live_runners.add(self)
        try:
            vin, vout = self._runner.get_input_tensors(), self._runner.get_output_tensors()
            self._in_tensors, self._out_tensors = list(vin), list(vout)
            in_names = bind_names(vin, inputs, where)
            out_names = bind_names(vout, outputs, where)
            self._inputs = [_tensor_info(t, n, where) for t, n in zip(vin, in_names)]
            self._outputs = [_tensor_info(t, n, where) for t, n in zip(vout, out_names)]
        except BaseException:
            self.close()  # VART's runner goes with it, and VART's lock with the last one
            raise
        for mine, theirs in ((self._inputs, inputs), (self._outputs, outputs)):
            for info in mine:
                plan_fp = next((t.fix_point for t in theirs or () if t.name == info.name), info.fix_point)
                if plan_fp != info.fix_point:
                    log.warning(
                        "%s: tensor %s has fix_point %s in the xmodel but %s in the plan; using the xmodel's",
                        where,
                        info.name,
                        info.fix_point,
                        plan_fp,
                    )

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def _input_buffers(self, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], int]:
        buffers, batch = [], None
        for info in self._inputs:
            if info.name not in feeds:
                raise DataError(f"{self.name}: missing input {info.name!r}")
            x = feeds[info.name]
            if not isinstance(x, np.ndarray) or x.dtype != np.int8:
                raise DataError(f"{self.name}: input {info.name!r} must be int8 (quantize by its fix_point)")
            if x.ndim != len(info.shape) or x.shape[1:] != info.shape[1:]:
                raise DataError(f"{self.name}: input {info.name!r} is {x.shape}, expected {info.any_batch()} NHWC")
            if batch is not None and x.shape[0] != batch:
                raise DataError(f"{self.name}: inputs have different batch sizes")
            batch = x.shape[0]
            if batch > info.shape[0]:
                raise DataError(f"{self.name}: batch {batch} is larger than the DPU runner's {info.shape[0]}")
            if batch < info.shape[0]:  # VART takes whole tensors: pad to the runner's batch
                pad = np.zeros(info.shape, np.int8)
                pad[:batch] = x
                x = pad
            buffers.append(np.require(x, requirements=("C_CONTIGUOUS", "WRITEABLE")))  # VART asks for both
        return buffers, batch or 1

    def submit(self, feeds: dict[str, np.ndarray]) -> tuple[Any, list[np.ndarray], int]:
        """Start one DPU job; pass what it returns to collect()."""
        if self._runner is None:
            raise RuntimeError("runner is closed")
        buffers, batch = self._input_buffers(feeds)
        outs = [np.empty(info.shape, dtype=np.int8, order="C") for info in self._outputs]
        job = self._runner.execute_async(buffers, outs)
        status = job[1] if isinstance(job, tuple) and len(job) > 1 else 0
        if status != 0:
            self._runner.wait(job)
            raise DeviceError(f"{self.name}: VART execute_async failed with status {status}")
        return job, outs, batch

    def collect(self, pending: tuple[Any, list[np.ndarray], int]) -> dict[str, np.ndarray]:
        """Wait for a job from submit() and return its int8 NHWC outputs."""
        job, outs, batch = pending
        if self._runner is None:
            raise RuntimeError("runner is closed")
        status = self._runner.wait(job)
        if status not in (0, None):
            raise DeviceError(f"{self.name}: VART wait returned status {status}")
        return {info.name: y[:batch] for info, y in zip(self._outputs, outs)}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.collect(self.submit(feeds))

    def close(self) -> None:
        self._runner = None
        with _live_lock:
            _live_runners.discard(self)
