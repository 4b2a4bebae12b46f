"""Deploy check: every layer's int8 output from the emulator against a second source, and the first layer
that diverges (in the spirit of vai_q_pytorch's deploy_check dumps).

Second sources: `torch` (quant/torch_ref.py, float64 fake quantization of the same file), `ort` (ONNX
Runtime on the same file, every QuantizeLinear output exposed, each layer fed the emulator's int8 inputs), or
a folder of dumped tensors. The default tolerance is 0 LSB, but 1 against `ort`: ONNX Runtime rounds ties
to even where the DPU rounds them up, one LSB in the layer that rounds (DEFAULT_TOLERANCE). A dump
folder holds one file per int8 tensor, named after the QDQ file's QuantizeLinear output with characters
outside [A-Za-z0-9._-] replaced by '_': `<name>.npy` (int8, NHWC) or `<name>.bin` (raw int8, NHWC, the
emulator's shape). If it holds the subgraph's input tensor(s), those are fed to the emulator, so a dump
taken on a board with the same input image compares directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from dpupose.errors import DataError, UsageError, shortlist
from dpupose.fsio import json_text, not_a_file, read_own_json, same_file, write_set
from dpupose.runtime.base import quantize_to_int8
from dpupose.runtime.emulator import EmulatorRunner, nhwc_to_nchw, runs_of

SOURCES = ("torch", "ort")
# LSBs a layer may differ by default: torch and a board's dumps compute what the DPU does, bit for bit; ONNX
# Runtime's QuantizeLinear rounds ties to even, the DPU up, so a correct layer differs from it by one LSB at ties.
DEFAULT_TOLERANCE = {"torch": 0, "ort": 1}


def default_tolerance(against: str) -> int:
    """The LSBs a layer may differ from `against` ("torch", "ort" or a dump folder) when none is given."""
    return DEFAULT_TOLERANCE.get(against, 0)


def dump_name(tensor: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", tensor)


# Beside an emulator dump's files: which of the folder's files --dump wrote, the ones a later --dump replaces.
DUMP_RECORD = "dump.json"
DUMP_GENERATED_BY = "dpupose deploy-check --dump"


def _dumped_before(folder: Path) -> set[str] | None:
    """The files an earlier --dump wrote into `folder`, as its DUMP_RECORD lists them; None without one."""
    doc = read_own_json(folder / DUMP_RECORD)
    if not isinstance(doc, dict) or doc.get("generated_by") != DUMP_GENERATED_BY:
        return None
    files = doc.get("files")
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else None


def check_dump_dir(folder: Path, tensors: Iterable[str]) -> None:
    """Refuse (UsageError), before any work, a --dump folder holding a file that no earlier --dump wrote at a
    name this dump writes (`<name>.npy` of each of `tensors`) or reads first (a `<name>.bin`, which a `.npy`
    beside it hides from --against), or a DUMP_RECORD of another program: a board's dumps of the same tensors,
    say, were replaced by the emulator's without a word. A link at any of those names is no earlier --dump's file,
    listed or not: written through, the file it points to (a board's dump elsewhere) was replaced."""
    record = folder / DUMP_RECORD
    ours = None if record.is_symlink() else _dumped_before(folder)
    taken = [DUMP_RECORD] if ours is None and os.path.lexists(record) else []
    ours = ours or set()
    for tensor in tensors:
        for name in (f"{dump_name(tensor)}.npy", f"{dump_name(tensor)}.bin"):
            path = folder / name
            if (name not in ours or path.is_symlink()) and name not in taken and os.path.lexists(path):
                taken.append(name)
    if taken:
        taken = taken[:1] + sorted(taken[1:]) if taken[0] == DUMP_RECORD else sorted(taken)  # as `ls` lists them
        shown = shortlist(taken)
        it = "it" if len(taken) == 1 else "them"
        raise UsageError(
            f"--dump {folder} holds {shown}, which no earlier --dump wrote there (its {DUMP_RECORD} lists those) and "
            f"this dump would write over or hide: move {it} elsewhere, or choose another --dump"
        )


def _record(files: list[str]) -> dict:
    return {"generated_by": DUMP_GENERATED_BY, "files": files}


def write_dump_dir(folder: Path, trace: dict[str, np.ndarray]) -> None:
    """One `<name>.npy` per tensor in `folder`, and DUMP_RECORD listing them (and an earlier dump's still
    there), as a set (fsio.write_set): a full disk leaves an earlier dump's files as they were and no file cut
    short, and its error names the file. Each is made in memory: np.save's own write into a file reported a
    full disk as '49152 requested and 32640 written', no errno and no file."""
    import io

    names = [f"{dump_name(name)}.npy" for name in trace]
    earlier = {f for f in _dumped_before(folder) or () if f.endswith(".npy") and (folder / f).is_file()}

    def files():
        for name, arr in zip(names, trace.values()):
            data = io.BytesIO()
            np.save(data, arr)
            yield folder / name, data.getvalue()
        yield folder / DUMP_RECORD, (json_text(_record(sorted(earlier | set(names))), indent=2) + "\n").encode()

    write_set(files())


def read_dump_dir(folder: Path, shapes: dict[str, tuple[int, ...]], any_batch: bool = False) -> dict[str, np.ndarray]:
    """The dumped tensors of `shapes` found in `folder`; any_batch: a .npy of any number of images (the inputs,
    whose count sets the batch; a .bin, having no shape, is of the batch in `shapes`)."""
    out = {}
    again = "dump it again from this subgraph (int8, NHWC), or remove it"
    for name, shape in shapes.items():
        npy = folder / f"{dump_name(name)}.npy"
        raw = folder / f"{dump_name(name)}.bin"
        for at in (npy, raw):  # a tensor not dumped is skipped; one at its name that is no file was skipped too
            if os.path.lexists(at) and not at.is_file():
                raise DataError(
                    f"{at} {not_a_file(at)}, where the dump of tensor {name!r} is read from: put the dumped "
                    "tensor's file there, or move it away to leave that tensor out"
                )
        path = npy if npy.is_file() else raw
        if npy.is_file():
            try:
                arr = np.load(npy, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise DataError(f"{npy} is not a readable .npy file ({exc}): dump the tensor again") from None
        elif raw.is_file():
            arr = np.fromfile(raw, dtype=np.int8)
            if arr.size != int(np.prod(shape)):
                raise DataError(
                    f"{raw} has {arr.size} bytes, tensor {name!r} needs {int(np.prod(shape))} "
                    f"(shape {tuple(shape)}): {again}"
                )
            arr = arr.reshape(shape)
        else:
            continue
        if arr.shape != tuple(shape) and not (any_batch and arr.shape[1:] == tuple(shape)[1:] and arr.ndim > 0):
            raise DataError(
                f"{path}: dumped {name!r} has shape {arr.shape}, the emulator's is {tuple(shape)} (NHWC): {again}"
            )
        out[name] = arr.astype(np.int8)
    if not out:
        files = shortlist([f"{dump_name(name)}.npy" for name in shapes])
        raise DataError(
            f"{folder} holds no dumped tensor of this subgraph: it reads {files} (or .bin, int8 NHWC); dump them "
            "from this subgraph, or give the folder that holds them"
        )
    return out


def ort_trace(
    qdq_path: Path,
    feeds_int8: dict[str, np.ndarray],
    fix: dict[str, int],
    emulated: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every QuantizeLinear output of the file as computed by ONNX Runtime (int8 NHWC).

    With `emulated` (the emulator's trace), every layer reads the emulator's int8 tensors in place of ONNX
    Runtime's own, so each layer is compared on the same inputs: a difference (a tie ONNX Runtime rounds to
    even where the DPU rounds up) stays in the layer that made it instead of spreading through the rest."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(qdq_path))
    inits = {t.name for t in model.graph.initializer}
    first = next((vi.type.tensor_type.shape.dim for vi in model.graph.input if vi.name not in inits), [])
    # the images a run takes: a file exported at a fixed batch (2, say) takes that many, any other count none
    batch = first[0].dim_value if first and first[0].HasField("dim_value") and first[0].dim_value > 0 else 1
    q_outputs = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    have = {o.name for o in model.graph.output}
    for name in q_outputs:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT8, None))
    cut = {name: f"{name}:emulated" for name in q_outputs if emulated is not None and name in emulated}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in cut:
                node.input[i] = cut[name]
    for fed in cut.values():
        model.graph.input.append(onnx.helper.make_tensor_value_info(fed, onnx.TensorProto.INT8, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # unfused, as QdqOrtRunner
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {k: nhwc_to_nchw(v).astype(np.float32) * np.float32(2.0 ** -fix[k]) for k, v in feeds_int8.items()}
    feeds |= {fed: nhwc_to_nchw(emulated[name]) for name, fed in cut.items()}
    # `batch` samples a run (one for a symbolic batch): a file exported with a fixed batch takes no other count
    # (the emulator and the torch interpreter take any batch); the last run is padded with zeros, their outputs
    # dropped, as QdqOrtRunner does.
    runs = [(m, sess.run(q_outputs, chunk)) for m, chunk in runs_of(feeds, batch)]
    results = [
        np.concatenate([r[j][:m] for m, r in runs])
        if runs[0][1][j].ndim and runs[0][1][j].shape[0] == batch
        else runs[0][1][j]
        for j in range(len(q_outputs))
    ]
    return {n: (r.transpose(0, 2, 3, 1) if r.ndim == 4 else r) for n, r in zip(q_outputs, results)}


def compare_traces(
    reference: dict[str, np.ndarray], emulated: dict[str, np.ndarray], order: list[str], tolerance: int = 0
) -> dict:
    """Per-tensor |difference| in LSBs for the tensors both sides have, in execution order."""
    rows = []
    first = None
    for name in order:
        if name not in reference or name not in emulated:
            continue
        ref = reference[name].astype(np.int64)
        got = emulated[name].astype(np.int64)
        if ref.shape != got.shape:
            raise DataError(f"tensor {name!r}: reference shape {ref.shape}, emulator shape {got.shape}")
        d = np.abs(ref - got)
        row = {
            "tensor": name,
            "shape": list(got.shape),
            "max_lsb": int(d.max()),
            "mean_lsb": float(d.mean()),
            "mismatch_fraction": float(np.mean(d > 0)),
        }
        rows.append(row)
        if first is None and row["max_lsb"] > tolerance:
            first = name
    if not rows:
        raise DataError("the two sources have no tensor in common")
    return {"tolerance_lsb": tolerance, "first_divergent": first, "layers": rows}


def deploy_check(
    qdq_path: str | Path,
    images: np.ndarray | Callable[[], np.ndarray] | None,
    against: str,
    tolerance: int | None = None,
    dump: Path | None = None,
) -> dict:
    """Compare the emulator with `against` ("torch", "ort" or a dump folder) on `images` (N,3,S,S float,
    or a function that makes them: not called when a dump folder provides the subgraph's inputs). A layer
    diverges when it differs by more than `tolerance` LSBs (None: default_tolerance(against))."""
    qdq_path = Path(qdq_path)
    if tolerance is None:
        tolerance = default_tolerance(against)
    emu = EmulatorRunner(qdq_path, who="deploy-check")  # refuses a symbolic size but the batch (check_fixed_sizes)
    program = emu.program
    dump_folder = None if against in SOURCES else Path(against)
    if dump_folder is not None and not dump_folder.is_dir():
        raise UsageError(
            f"--against must be {' or '.join(SOURCES)}, or a folder of dumped tensors; {against} is neither"
        )
    # By device and inode too (same_file): a bind mount of the folder elsewhere is a name resolve() does not tie to it.
    if (
        dump is not None
        and dump_folder is not None
        and (dump.resolve() == dump_folder.resolve() or same_file(dump, dump_folder))
    ):
        raise UsageError(
            f"--dump {dump} is the folder --against reads: the emulator's tensors would replace the ones "
            "compared with; choose another --dump"
        )
    if dump is not None:  # before any work: the names are the subgraph's tensors
        check_dump_dir(dump, [b.tensor for b in program.inputs] + [s.out for s in program.steps])
    feeds: dict[str, np.ndarray] = {}
    if dump_folder is not None:
        # Of the batch dumped (--dump writes --num images): the emulator runs them one at a time.
        shapes = {b.tensor: tuple(i.shape) for b, i in zip(program.inputs, emu.inputs)}
        names = [dump_folder / f"{dump_name(t)}{ext}" for t in shapes for ext in (".npy", ".bin")]
        # None dumped: the images feed it; one that is there but does not fit is said, not passed over for them.
        dumped_inputs = read_dump_dir(dump_folder, shapes, any_batch=True) if any(map(os.path.lexists, names)) else {}
        feeds = {b.name: dumped_inputs[b.tensor] for b in program.inputs if b.tensor in dumped_inputs}
    if len(feeds) != len(program.inputs):
        files = ", ".join(f"{dump_name(b.tensor)}.npy" for b in program.inputs)
        if len(program.inputs) != 1:
            raise UsageError(
                f"the subgraph takes {len(program.inputs)} inputs, and an image feeds only one: give --against "
                f"DUMP_DIR holding them as {files} (int8, NHWC), e.g. dumped on the board"
            )
        if images is None:
            raise UsageError(f"give input images, or a dump folder that holds the subgraph's input tensor as {files}")
        b = program.inputs[0]
        x = images() if callable(images) else images
        feeds = {b.name: quantize_to_int8(np.asarray(x).transpose(0, 2, 3, 1), b.fix_point)}
    trace = emu.trace(feeds)
    order = [b.tensor for b in program.inputs] + [s.out for s in program.steps]
    if against == "torch":
        from dpupose.quant.torch_ref import TorchQdqReference

        float_feeds = {
            b.name: nhwc_to_nchw(feeds[b.name]).astype(np.float64) * 2.0**-b.fix_point for b in program.inputs
        }
        reference = TorchQdqReference(qdq_path).trace(float_feeds)
    elif against == "ort":
        reference = ort_trace(qdq_path, feeds, {b.name: b.fix_point for b in program.inputs}, trace)
    else:
        shapes = {name: trace[name].shape for name in order}
        reference = read_dump_dir(dump_folder, shapes)
    if dump is not None:  # after the reference is read
        write_dump_dir(dump, trace)
    report = compare_traces(reference, trace, order, tolerance)
    report["against"] = against
    report["samples"] = int(next(iter(feeds.values())).shape[0])
    report["fix_points"] = {name: program.fix_points[name] for name in order}
    return report
