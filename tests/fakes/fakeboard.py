"""Shared state of the fake board modules (vart, xir, pynq_dpu) and the record of every call.

Call shapes follow the real modules:
- `pynq_dpu.DpuOverlay(bitfile)`: needs the .hwh beside the .bit (pynq.Overlay) and the .xclbin (which
  it copies to /usr/lib for VART); programs the PL. PYNQ 3.0.1 registers its embedded device only when
  XILINX_XRT is set at import time (/etc/profile.d/xrt_setup.sh); without it, "No Devices Found".
- `xir.Graph.deserialize(path)` -> Graph; `graph.get_root_subgraph()` -> Subgraph with `is_leaf`,
  `toposort_child_subgraph()`, `get_name()`, `has_attr(name)`, `get_attr(name)` ("device" is "USER", "DPU"
  or "CPU"; DPU subgraphs carry "dpu_fingerprint", a uint64).
- `vart.Runner.create_runner(subgraph, "run")`, which aborts (ProcessAborted) without a DPU or without a
  "runner" attribute naming a library for the mode; `runner.get_input_tensors()` / `get_output_tensors()` ->
  xir.Tensor with `name`, `dims` (NHWC list), `dtype` ("xint8"), `ndim`, `get_attr("fix_point")`;
  `runner.execute_async(inputs, outputs)` takes lists of writable, C-contiguous numpy arrays whose shape
  is the tensor's dims (int8, or float32 which VART converts) and returns a (job_id, status) pair;
  `runner.wait(job)` takes that pair and returns 0.
Violations raise, as the real binding does (a read-only array: it requests writable buffers) or its
CHECKs abort; the real one does not check shapes or strides at all (it reads the tensor's size from the
pointer), so a wrong buffer there is silently wrong data.
As on the board's DPU (VART 2.5's edge runner), a job runs to completion inside execute_async and every
job id is 1; the fake records its own job numbers and pairs each wait with the runner's oldest job, so
code that keeps jobs apart by their id meets the same ids here as on the board.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
from pathlib import Path

import numpy as np

_lock = threading.Lock()
XRT_AT_IMPORT = "XILINX_XRT" in os.environ  # as pynq.pl_server decides when pynq is imported
CALLS: list[tuple] = []  # ("DpuOverlay", path), ("deserialize", path), ("create_runner", sg, mode), ...
# lock_dir: where VART's per-DPU lock files are (VART: /tmp; a test gives its own folder, else none is taken);
# dpu_lock: the descriptor of the lock this process holds (VART holds it while the process has a runner)
STATE: dict = {"overlay": None, "jobs": {}, "lock_dir": None, "dpu_lock": None}
_job_ids = itertools.count(1)  # the fake's own job numbers, for the call record
EDGE_JOB_ID = 1  # what VART 2.5's edge DPU runner returns for every job


def record(*call: object) -> None:
    with _lock:
        CALLS.append(call)


def reset() -> None:
    with _lock:
        CALLS.clear()
        STATE["overlay"] = None
        STATE["jobs"] = {}
        STATE["lock_dir"] = None
        if STATE["dpu_lock"] is not None:
            os.close(STATE["dpu_lock"])  # the process "ends": its lock goes
        STATE["dpu_lock"] = None


def unwaited_jobs() -> list[int]:
    return [j for j, state in STATE["jobs"].items() if state != "waited"]


def _dump_log() -> None:  # for subprocess tests: FAKEBOARD_LOG=path
    path = os.environ.get("FAKEBOARD_LOG")
    if path:
        Path(path).write_text(json.dumps({"calls": [list(map(str, c)) for c in CALLS], "unwaited": unwaited_jobs()}))


atexit.register(_dump_log)


class ProcessHung(BaseException):
    """Where the real module would wait for as long as another process lives (VART's lock on the DPU)."""


def _take_dpu_lock() -> None:
    """As VART 2.5's XRT device handle does at the first runner of a process: lockf on DPU_0 in the lock
    folder (VART: /tmp/DPU_0, created world-writable), waiting while another process holds it (here:
    ProcessHung, after recording it), then held for as long as the process has runners."""
    import fcntl

    if STATE["lock_dir"] is None or STATE["dpu_lock"] is not None:
        return
    fd = os.open(Path(STATE["lock_dir"]) / "DPU_0", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        record("hang", "waiting for process to release the resource: DPU_0")
        raise ProcessHung("waiting for process to release the resource: DPU_0") from None
    STATE["dpu_lock"] = fd


class ProcessAborted(BaseException):
    """What the real modules do instead of raising: XIR and VART report their errors through glog's FATAL
    (UNI_LOG_FATAL, CHECK), which aborts the process. Not an Exception, so no `except Exception` in the code
    under test stops it, as nothing stops an abort; a test that meets it has found a path the board dies on."""


def abort(reason: str) -> None:
    record("abort", reason)
    raise ProcessAborted(reason)


def write_fake_xmodel(path: str | Path, subgraphs: list[dict]) -> Path:
    """A fake .xmodel. Each DPU subgraph: {"name", "device": "DPU", "fingerprint": int|None, "onnx": path
    relative to the xmodel, "inputs"/"outputs": [{"name", "dims", "fix_point", "onnx_name"}]}; other
    devices: {"name", "device": "CPU"}. Written as XIR's serial_v2.Graph protobuf (what the real
    deserialize parses) whose graph_name (field 1) holds that description as JSON."""
    path = Path(path)
    text = json.dumps({"fake_xmodel": 1, "subgraphs": subgraphs}).encode()
    length, size = bytearray(), len(text)
    while size > 0x7F:
        length.append(size & 0x7F | 0x80)
        size >>= 7
    path.write_bytes(b"\x0a" + bytes(length) + bytes([size]) + text)
    return path


# --- xir ------------------------------------------------------------------------------------------------


class Tensor:
    def __init__(self, spec: dict) -> None:
        self.name = spec["name"]
        self.dims = list(spec["dims"])
        self.dtype = spec.get("dtype", "xint8")
        self.ndim = len(self.dims)
        self._attrs = {"fix_point": spec["fix_point"]}
        self.onnx_name = spec.get("onnx_name", spec["name"])

    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def get_attr(self, name: str):
        return self._attrs[name]

    def get_element_num(self) -> int:
        return int(np.prod(self.dims))

    def get_data_size(self) -> int:
        return self.get_element_num()


DPU_RUNNERS = {"ref": "libvart-cpu-runner.so", "sim": "libvart-sim-runner.so", "run": "libvart-dpu-runner.so"}


class Subgraph:
    def __init__(self, spec: dict, base: Path, children: list[Subgraph] | None = None) -> None:
        self.spec = spec
        self.base = base
        self._children = children or []
        self._attrs = {"device": spec["device"]}
        if spec["device"] == "DPU":  # what vai_c_xir gives a DPU subgraph: VART's runner library per mode
            self._attrs["runner"] = spec.get("runner", DPU_RUNNERS)
            if self._attrs["runner"] is None:
                del self._attrs["runner"]
        if spec.get("fingerprint") is not None:
            self._attrs["dpu_fingerprint"] = int(spec["fingerprint"])
            self._attrs["dpu_name"] = "DPUCZDX8G_ISA1_B1600"
        self.inputs = [Tensor(t) for t in spec.get("inputs", [])]
        self.outputs = [Tensor(t) for t in spec.get("outputs", [])]

    def get_name(self) -> str:
        return self.spec["name"]

    @property
    def is_leaf(self) -> bool:
        return not self._children

    @property
    def is_root(self) -> bool:
        return self.spec["device"] == "USER" and bool(self._children)

    def toposort_child_subgraph(self) -> list[Subgraph]:
        record("toposort_child_subgraph", self.get_name())
        return list(self._children)

    def get_children(self) -> set:
        return set(self._children)

    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def get_attr(self, name: str):
        if name not in self._attrs:
            raise RuntimeError(f"subgraph {self.get_name()} has no attr {name}")  # the real one aborts
        return self._attrs[name]


class Graph:
    def __init__(self, path: Path, root: Subgraph) -> None:
        self.path = path
        self._root = root

    @staticmethod
    def deserialize(path: str) -> Graph:
        """As XIR 2.5's Graph::deserialize: the file parsed as a serial_v2.Graph protobuf, and the process
        aborted (XIR_READ_PB_FAILURE, FATAL) when protobuf refuses it or the file cannot be read."""
        from google.protobuf.message import DecodeError
        from xir_pb import Graph as GraphProto

        record("deserialize", path)
        p = Path(path)
        try:
            proto = GraphProto.FromString(p.read_bytes())
        except (OSError, DecodeError):
            abort(f"[XIR_READ_PB_FAILURE] file = {path}")
        try:
            data = json.loads(proto.graph_name)
            assert data["fake_xmodel"] == 1
        except (ValueError, TypeError, KeyError, AssertionError):
            data = {"subgraphs": []}  # a graph the fake knows nothing of: a root without children
        children = [Subgraph(s, p.parent) for s in data["subgraphs"]]
        return Graph(p, Subgraph({"name": "root", "device": "USER"}, p.parent, children))

    def get_root_subgraph(self) -> Subgraph:
        return self._root

    def get_name(self) -> str:
        return self.path.stem


# --- vart -----------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, subgraph: Subgraph) -> None:
        import onnxruntime as ort

        self.subgraph = subgraph
        self._in_flight: list[int] = []  # the fake's job numbers, oldest first
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(subgraph.base / subgraph.spec["onnx"]), opts)

    @staticmethod
    def create_runner(subgraph: Subgraph, mode: str = "") -> Runner:
        """As VART 2.5's Runner::create_runner, whose checks are UNI_LOG_CHECK / CHECK (an abort): the
        subgraph's "runner" attribute must name a library for `mode`, and the DPU runner must find a DPU
        compute unit in the xclbin it loads ("no dpu cu detected"): here, an overlay loaded by DpuOverlay."""
        record("create_runner", subgraph.get_name(), mode)
        runners = subgraph._attrs.get("runner")
        if not isinstance(runners, dict) or mode not in runners:
            abort(f"[VART_RUNNER_CONSTRUCTION_FAIL] Cannot find runner for mode {mode} in {subgraph.get_name()}")
        if STATE["overlay"] is None:
            abort("Check failed: xrt_cu->get_num_of_cu() != 0u no dpu cu detected. please check /usr/lib/dpu.xclbin")
        if subgraph.get_attr("device") != "DPU" or mode != "run":
            raise RuntimeError(f"fake vart only makes DPU runners in mode 'run' (got {mode!r})")
        _take_dpu_lock()
        return Runner(subgraph)

    def get_input_tensors(self) -> list[Tensor]:
        return list(self.subgraph.inputs)

    def get_output_tensors(self) -> list[Tensor]:
        return list(self.subgraph.outputs)

    @staticmethod
    def _check(buffers: object, tensors: list[Tensor], what: str) -> list[str]:
        if not isinstance(buffers, list) or len(buffers) != len(tensors):
            raise RuntimeError(f"{what}: expected a list of {len(tensors)} arrays")
        dtypes = []
        for b, t in zip(buffers, tensors):
            if not isinstance(b, np.ndarray) or b.dtype not in (np.int8, np.float32):
                raise RuntimeError(f"{what} {t.name}: unsupported data type")  # CHECK in to_py_buf_format
            if not b.flags.writeable:
                raise ValueError("buffer source array is read-only")  # numpy, for py::buffer::request(true)
            if not b.flags.c_contiguous or list(b.shape) != t.dims:
                raise RuntimeError(f"{what} {t.name}: buffer {b.shape} is not the contiguous tensor {t.dims}")
            dtypes.append(str(b.dtype))
        return dtypes

    def execute_async(self, inputs: list, outputs: list, enable_dynamic_array: bool = False) -> tuple[int, int]:
        in_types = self._check(inputs, self.subgraph.inputs, "input")
        out_types = self._check(outputs, self.subgraph.outputs, "output")
        job = next(_job_ids)
        record(
            "execute_async",
            self.subgraph.get_name(),
            job,
            tuple(tuple(b.shape) for b in inputs),
            tuple(in_types),
            tuple(tuple(b.shape) for b in outputs),
            tuple(out_types),
        )
        feeds = {}
        for b, t in zip(inputs, self.subgraph.inputs):
            scale = 2.0 ** -t.get_attr("fix_point")
            x = b.astype(np.float32) * np.float32(scale) if b.dtype == np.int8 else b
            feeds[t.onnx_name] = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x
        names = [t.onnx_name for t in self.subgraph.outputs]
        batch = [self._session.run(names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(len(inputs[0]))]
        results = [np.concatenate([b[k] for b in batch]) for k in range(len(names))]
        for b, t, y in zip(outputs, self.subgraph.outputs, results):
            y = y.transpose(0, 2, 3, 1) if y.ndim == 4 else y
            if b.dtype == np.int8:
                q = np.floor(y.astype(np.float64) * 2.0 ** t.get_attr("fix_point") + 0.5)
                np.copyto(b, np.clip(q, -128, 127).astype(np.int8))
            else:
                np.copyto(b, y)
        with _lock:
            STATE["jobs"][job] = "running"
            self._in_flight.append(job)
        return (EDGE_JOB_ID, 0)

    def wait(self, job: tuple[int, int]) -> int:
        if not isinstance(job, tuple) or len(job) != 2:
            raise TypeError("wait() takes the (job_id, status) pair execute_async returned")
        with _lock:
            if job[0] != EDGE_JOB_ID:
                raise RuntimeError(f"wait on job {job[0]}, which execute_async never returned")
            if not self._in_flight:
                raise RuntimeError(f"wait on {self.subgraph.get_name()} with no job in flight")
            mine = self._in_flight.pop(0)
            STATE["jobs"][mine] = "waited"
        record("wait", self.subgraph.get_name(), mine)
        return 0


# --- pynq_dpu -------------------------------------------------------------------------------------------


class DpuOverlay:
    def __init__(self, bitfile_name: str, dtbo=None, download: bool = True, ignore_version: bool = False, device=None):
        record("DpuOverlay", bitfile_name)
        bit = Path(bitfile_name)
        if not bit.is_file():
            raise FileNotFoundError(f"Cannot find {bitfile_name}.")
        if not XRT_AT_IMPORT:
            raise RuntimeError("No Devices Found")  # pynq.Device.active_device without an XRT environment
        if not bit.with_suffix(".hwh").is_file():
            raise ValueError(f"Cannot find metadata file {bit.with_suffix('.hwh')}")  # pynq.Overlay's check
        xclbin = bit.parent / (bit.name.rstrip(".bit") + ".xclbin")  # DpuOverlay.copy_xclbin's name for it
        if not xclbin.is_file():
            raise ValueError(f"File {xclbin} does not exist.")
        self.bitfile_name = str(bit)
        self.overlay_dirname = str(bit.parent)
        self.overlay_basename = bit.name
        self.runner = None
        self.graph = None
        STATE["overlay"] = str(bit)

    def load_model(self, model: str) -> None:  # pynq_dpu 2.5.1: exactly one DPU subgraph
        record("load_model", model)
        graph = Graph.deserialize(model)
        dpu = [s for s in graph.get_root_subgraph().toposort_child_subgraph() if s.get_attr("device") == "DPU"]
        assert len(dpu) == 1
        self.graph = graph
        self.runner = Runner.create_runner(dpu[0], "run")
