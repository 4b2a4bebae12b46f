"""The split plan (`plan.json`, version 1): which subgraph runs where, in which order, with which tensors.

A plan folder holds `plan.json` and the files it names (paths relative to the folder, so the folder can
be copied to a board as it is):

    {
      "version": 1,
      "generated_by": "...",                      optional: what wrote the plan
      "fingerprint": "0x101000016010404",         DPU configuration the plan was made for (arch.json)
      "dpu_config": "u96v2-b1600-pynq",
      "model": {"name": ..., "input_size": 224, "sha256": <sha256 of the source ONNX>},
      "input": {"name": "image", "shape": [1, 3, 224, 224], "layout": "NCHW", "dtype": "float32",
                "preprocessing": "imagenet"},
      "outputs": {"coords": "coords", "heatmaps": "heatmaps"},   final tensors; heatmaps may be null; a
                                                  CPU or a DPU subgraph's output (shapes checked in NCHW order)
      "subgraphs": [                               in execution order
        {"name": "dpu0", "device": "dpu", "file": "dpu0.onnx",
         "xmodel": "model.xmodel", "xmodel_subgraph": "subgraph_...",   optional, DPU only (board)
         "xmodel_sha256": "...",                   optional, with xmodel: checked against it when loading
         "sha256": "...",                          optional: checked against `file` when loading
         "reason": "...",                          optional, CPU only: why it is not on the DPU
         "inputs": [TENSOR, ...], "outputs": [TENSOR, ...]}
      ],
      "metadata": {...}                            optional, free-form (e.g. predicted timings)
    }
    TENSOR = {"name": ..., "shape": [1, 56, 56, 24], "layout": "NHWC", "dtype": "int8", "fix_point": 5}

DPU-side tensors are int8 NHWC with a fix point (real value = int8 * 2**-fix_point), as VART exchanges
them; CPU-side tensors are float32 NCHW. A model output a DPU subgraph produces is int8 NHWC like its other
outputs; the runtime hands it out as float32 NCHW (as at a DPU -> CPU boundary). A DPU subgraph's `file` is
a QDQ ONNX whose inputs are float tensors consumed by QuantizeLinear and whose outputs come out of
DequantizeLinear (the emulator and the `cpu` backend run it; the board runs `xmodel`).

`xmodel_sha256`, which `split --xmodel` writes, keeps a compile of another checkpoint or width copied over
`xmodel` under its name (the plan's fingerprint and tensors: VART runs it without a word) from being run:
loading refuses it. Plans holding it are still version 1: one without it (split before it was recorded, or
with no xmodel) reads as before, and a dpupose from before it refuses one holding it as it refuses any field it
does not know ("unknown field(s) xmodel_sha256 in subgraphs[0]: the plan was written by another dpupose
version; ..."), naming the cause. Version 2 would have turned away every new plan, with an xmodel or not.

Board-safe: standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from dpupose.data.joints import NUM_JOINTS
from dpupose.errors import ModelFileError
from dpupose.fsio import loads_json, not_a_file, read_own_json, sha256_file, write_json
from dpupose.split.plan_schema import (
    DEVICES,
    DTYPES,
    PLAN_FILE,
    PLAN_VERSION,
    PREPROCESSING,
    RESPLIT,
    BoundaryTensor,
    InputSpec,
    ModelInfo,
    OutputNames,
    Plan,
    Subgraph,
    parse_fingerprint,
)

__all__ = [
    "PLAN_FILE",
    "PLAN_VERSION",
    "RESPLIT",
    "SOFTMAX_EXPORT",
    "BoundaryTensor",
    "InputSpec",
    "ModelInfo",
    "OutputNames",
    "Plan",
    "Subgraph",
    "check_dataflow",
    "check_files",
    "heatmaps_not_normalized",
    "load_plan",
    "parse_fingerprint",
    "plan_from_dict",
    "save_plan",
]


class _Reader:
    """Strict field access on one JSON object; every error names the object and the field."""

    def __init__(self, obj: object, where: str, source: str) -> None:
        if not isinstance(obj, dict):
            raise ModelFileError(f"{source}: {where} must be a JSON object; {RESPLIT}")
        self.obj = obj
        self.where = where
        self.source = source

    def fail(self, key: str, what: str) -> ModelFileError:
        return ModelFileError(f"{self.source}: {self.where}.{key} {what}; {RESPLIT}")

    def check_keys(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        missing = [k for k in required if k not in self.obj]
        if missing:
            raise ModelFileError(f"{self.source}: {self.where} lacks field(s) {', '.join(missing)}; {RESPLIT}")
        unknown = sorted(set(self.obj) - set(required) - set(optional))
        if unknown:
            raise ModelFileError(
                f"{self.source}: unknown field(s) {', '.join(unknown)} in {self.where}: the plan was written by "
                f"another dpupose version; {RESPLIT}"
            )

    def text(self, key: str, nullable: bool = False) -> str | None:
        v = self.obj.get(key)
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(key, "must be a non-empty string" + (" or null" if nullable else ""))
        return v

    def integer(self, key: str, nullable: bool = False) -> int | None:
        v = self.obj.get(key)
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, "must be an integer" + (" or null" if nullable else ""))
        return v

    def shape(self, key: str) -> tuple[int, ...]:
        v = self.obj.get(key)
        if (
            not isinstance(v, list)
            or not v
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)
        ):
            raise self.fail(key, "must be a list of positive integers (static shape, batch first)")
        return tuple(v)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        v = self.obj.get(key)
        if v not in choices:
            raise self.fail(key, f"is {v!r}; expected one of {', '.join(choices)}")
        return v  # type: ignore[return-value]


def _tensor(obj: object, where: str, source: str) -> BoundaryTensor:
    r = _Reader(obj, where, source)
    r.check_keys(("name", "shape", "layout", "dtype", "fix_point"))
    shape = r.shape("shape")
    layout = r.text("layout")
    assert layout is not None
    if len(layout) != len(shape) or len(set(layout)) != len(layout) or not layout.isalpha():
        raise r.fail("layout", f"{layout!r} does not name the {len(shape)} axes of shape {list(shape)}")
    dtype = r.choice("dtype", DTYPES)
    fix_point = r.integer("fix_point", nullable=True)
    if dtype == "int8" and fix_point is None:
        raise r.fail("fix_point", "must be an integer for an int8 tensor (real = int8 * 2**-fix_point)")
    name = r.text("name")
    assert name is not None
    return BoundaryTensor(name, shape, layout, dtype, fix_point)


def _subgraph(obj: object, index: int, source: str) -> Subgraph:
    where = f"subgraphs[{index}]"
    r = _Reader(obj, where, source)
    r.check_keys(
        ("name", "device", "file", "inputs", "outputs"),
        ("xmodel", "xmodel_sha256", "xmodel_subgraph", "reason", "sha256"),
    )
    name = r.text("name")
    device = r.choice("device", DEVICES)
    file = r.text("file")
    tensors: dict[str, tuple[BoundaryTensor, ...]] = {}
    for key in ("inputs", "outputs"):
        items = r.obj[key]
        if not isinstance(items, list) or not items:
            raise r.fail(key, "must be a non-empty list of tensors")
        tensors[key] = tuple(_tensor(t, f"{where}.{key}[{i}]", source) for i, t in enumerate(items))
    xmodel = r.text("xmodel", nullable=True)
    xmodel_subgraph = r.text("xmodel_subgraph", nullable=True)
    if device == "cpu" and (xmodel or xmodel_subgraph):
        raise r.fail("xmodel", "is only for DPU subgraphs")
    xmodel_sha256 = r.text("xmodel_sha256", nullable=True)
    if xmodel_sha256 is not None and xmodel is None:
        raise r.fail("xmodel_sha256", "is given without xmodel (the .xmodel it is the sha256 of)")
    if xmodel_sha256 is not None and (len(xmodel_sha256) != 64 or not _is_hex(xmodel_sha256)):
        raise r.fail("xmodel_sha256", f"is {xmodel_sha256!r}, not a sha256 (64 hexadecimal digits)")
    for t in (*tensors["inputs"], *tensors["outputs"]):
        if device == "dpu" and t.dtype != "int8":
            raise r.fail("inputs/outputs", f"tensor {t.name!r} of a DPU subgraph must be int8 (is {t.dtype})")
        if device == "dpu" and len(t.shape) == 4 and t.layout != "NHWC":
            raise r.fail("inputs/outputs", f"tensor {t.name!r} of a DPU subgraph must be NHWC (is {t.layout})")
        if device == "cpu" and t.dtype != "float32":
            raise r.fail("inputs/outputs", f"tensor {t.name!r} of a CPU subgraph must be float32 (is {t.dtype})")
    assert name is not None and file is not None
    return Subgraph(
        name=name,
        device=device,
        file=file,
        inputs=tensors["inputs"],
        outputs=tensors["outputs"],
        xmodel=xmodel,
        xmodel_subgraph=xmodel_subgraph,
        reason=r.text("reason", nullable=True),
        sha256=r.text("sha256", nullable=True),
        xmodel_sha256=xmodel_sha256,
    )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def plan_from_dict(data: object, source: str = PLAN_FILE, root: Path | None = None) -> Plan:
    """Build and check a Plan from parsed JSON (ModelFileError naming the field on any problem)."""
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: not a split plan (expected a JSON object); {RESPLIT}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"{source}: field version is missing or not an integer; {RESPLIT}")
    if version > PLAN_VERSION:
        raise ModelFileError(
            f"{source}: plan version {version} is newer than this dpupose reads (version {PLAN_VERSION}): "
            "install the dpupose version that wrote the plan on this machine, or re-split the model with "
            "this version's `dpupose split`"
        )
    if version < 1:
        raise ModelFileError(f"{source}: plan version {version} is not valid; {RESPLIT}")
    r = _Reader(data, "plan", source)
    r.check_keys(
        ("version", "fingerprint", "dpu_config", "model", "input", "outputs", "subgraphs"),
        ("generated_by", "metadata"),
    )
    parse_fingerprint(data["fingerprint"], f"{source}: fingerprint")
    fingerprint = r.text("fingerprint")

    m = _Reader(data["model"], "model", source)
    m.check_keys(("name", "input_size", "sha256"))
    input_size = m.integer("input_size")
    assert input_size is not None
    if input_size < 1:
        raise m.fail("input_size", "must be positive")
    model = ModelInfo(m.text("name"), input_size, m.text("sha256"))  # type: ignore[arg-type]

    i = _Reader(data["input"], "input", source)
    i.check_keys(("name", "shape", "layout", "dtype", "preprocessing"))
    shape = i.shape("shape")
    if i.obj["layout"] != "NCHW" or i.obj["dtype"] != "float32":
        raise i.fail("layout", "must be NCHW with dtype float32 (the normalized image)")
    expected = (1, 3, input_size, input_size)
    if shape != expected:
        raise i.fail(
            "shape",
            f"is {list(shape)} but model.input_size is {input_size} (expected {list(expected)}): wrong input size",
        )
    inp = InputSpec(i.text("name"), shape, "NCHW", "float32", i.choice("preprocessing", PREPROCESSING))  # type: ignore[arg-type]

    o = _Reader(data["outputs"], "outputs", source)
    o.check_keys(("coords", "heatmaps"))
    outputs = OutputNames(o.text("coords"), o.text("heatmaps", nullable=True))  # type: ignore[arg-type]

    subs = data["subgraphs"]
    if not isinstance(subs, list) or not subs:
        raise r.fail("subgraphs", "must be a non-empty list")
    subgraphs = tuple(_subgraph(s, k, source) for k, s in enumerate(subs))
    metadata = data.get("metadata")
    if metadata is None:  # missing or null: none
        metadata = {}
    if not isinstance(metadata, dict):
        raise r.fail("metadata", "must be a JSON object")
    plan = Plan(
        fingerprint=fingerprint,  # type: ignore[arg-type]
        dpu_config=r.text("dpu_config"),  # type: ignore[arg-type]
        model=model,
        input=inp,
        outputs=outputs,
        subgraphs=subgraphs,
        version=version,
        generated_by=r.text("generated_by", nullable=True),
        metadata=metadata,
        root=root,
    )
    check_dataflow(plan, source)
    return plan


def _nchw(t: BoundaryTensor) -> tuple[int, ...]:
    """A tensor's shape in NCHW order (4-D: a DPU subgraph's NHWC tensor too) or as it is (other ranks)."""
    if len(t.shape) == 4 and set(t.layout) == set("NCHW"):
        return tuple(t.shape[t.layout.index(c)] for c in "NCHW")
    return t.shape


def _same_shape(a: BoundaryTensor, b: BoundaryTensor) -> bool:
    """Equal shapes once both are put in NCHW order (4-D) or as they are (other ranks)."""
    return _nchw(a) == _nchw(b)


def check_dataflow(plan: Plan, source: str = PLAN_FILE) -> None:
    """Every subgraph input comes from the plan input or an earlier subgraph, with a consistent shape."""
    names = [sg.name for sg in plan.subgraphs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ModelFileError(f"{source}: subgraph name(s) {', '.join(dup)} appear more than once; {RESPLIT}")
    image = BoundaryTensor(plan.input.name, plan.input.shape, "NCHW", "float32", None)
    available: dict[str, tuple[BoundaryTensor, str]] = {image.name: (image, "the plan input")}
    for sg in plan.subgraphs:
        for t in sg.inputs:
            if t.name not in available:
                raise ModelFileError(
                    f"{source}: subgraph {sg.name!r} takes tensor {t.name!r}, which neither the plan input nor an "
                    f"earlier subgraph produces (subgraphs must be listed in execution order); {RESPLIT}"
                )
            produced, by = available[t.name]
            if not _same_shape(produced, t):
                raise ModelFileError(
                    f"{source}: tensor {t.name!r} has shape {list(produced.shape)} ({produced.layout}) from {by} "
                    f"but subgraph {sg.name!r} expects {list(t.shape)} ({t.layout}); {RESPLIT}"
                )
        for t in sg.outputs:
            available[t.name] = (t, f"subgraph {sg.name!r}")
    expected = {"coords": (3, "(1, 16, 2)"), "heatmaps": (4, "(1, 16, H, W)")}
    for key in ("coords", "heatmaps"):
        name = getattr(plan.outputs, key)
        if name is None:
            continue
        if name not in available:
            raise ModelFileError(f"{source}: outputs.{key} {name!r} is produced by no subgraph; {RESPLIT}")
        shape = list(_nchw(available[name][0]))  # a DPU subgraph's output is NHWC: its channels are the joints
        rank, shown = expected[key]
        if len(shape) != rank or shape[1] != NUM_JOINTS or (key == "coords" and shape[2] != 2):
            raise ModelFileError(
                f"{source}: outputs.{key} {name!r} has shape {shape}, not {shown} (the 16 MPII joints); {RESPLIT}"
            )


def check_files(plan: Plan, source: str = PLAN_FILE) -> None:
    """The subgraph files exist inside the plan folder (and match their sha256 when the plan records one), and a
    compiled xmodel, where it is there, matches its xmodel_sha256 when the plan records one."""
    for sg in plan.subgraphs:
        for key in ("file", "xmodel"):
            rel = getattr(sg, key)
            if rel is None:
                continue
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ModelFileError(
                    f"{source}: subgraph {sg.name!r} {key} {rel!r} must be a path inside the plan folder; {RESPLIT}"
                )
            if key == "xmodel":  # only the vart backend needs it: a missing one is refused there
                _check_xmodel_digest(plan, sg, source)
                continue
            path = plan.path(rel)
            if not path.is_file():
                raise ModelFileError(
                    f"{source}: subgraph {sg.name!r} needs {path}, which is missing: copy the whole plan folder "
                    f"(plan.json and every file it names), or {RESPLIT}"
                )
            if sg.sha256 is not None and sha256_file(path) != sg.sha256.lower():
                raise ModelFileError(
                    f"{source}: {path} is not the file subgraph {sg.name!r} was split into (sha256 differs): the "
                    f"folder mixes files from different splits or model versions; {RESPLIT}"
                )


def _check_xmodel_digest(plan: Plan, sg: Subgraph, source: str) -> None:
    """A DPU subgraph's .xmodel, where it is there, is the one `split --xmodel` recorded (xmodel_sha256): a
    compile of another checkpoint or width copied over it under the same name has the plan's fingerprint and
    tensors, and VART would run it without a word, giving wrong keypoints. Hashed once per load (a few MB)."""
    if sg.xmodel is None or sg.xmodel_sha256 is None:
        return  # a plan written before split recorded it, or one without a compiled xmodel
    path = plan.path(sg.xmodel)
    if path.is_file() and sha256_file(path) != sg.xmodel_sha256.lower():
        raise ModelFileError(
            f"{source}: {path} is not the .xmodel subgraph {sg.name!r} was split with (sha256 differs: another "
            "compile copied over it, or a copy cut short), which VART would run with no error and wrong keypoints; "
            "copy the plan folder again, or split the model again the same way with --xmodel the .xmodel to use "
            f"(`dpupose split MODEL --out {plan.root or '.'} --xmodel NAME.xmodel`, docs/quantization.md)"
        )


def recorded_files(folder: str | Path) -> tuple[list[str], str | None]:
    """(the files a folder's plan.json names: subgraph files and xmodels, and its generated_by), read
    leniently ([], None for a missing or damaged plan): what replacing a plan folder may delete."""
    doc = read_own_json(Path(folder) / PLAN_FILE)  # a regular file only: a FIFO there was waited on for ever
    try:
        files = [sg[k] for sg in doc["subgraphs"] for k in ("file", "xmodel") if isinstance(sg.get(k), str)]
        return files, doc.get("generated_by")
    except (AttributeError, TypeError, KeyError):  # no plan (None), or one of another shape
        return [], None


def plan_folders_inside(folder: Path) -> str | None:
    """'the split plan folder inside it, A or B' for a folder without a plan whose subfolders hold one (a model
    card's folder, models/dpupose-synth, keeps its plan in split/), None where none does or it cannot be listed:
    what `dpupose run` and the board's staging say to pass instead."""
    inside: list[Path] = []
    with contextlib.suppress(OSError):
        inside = sorted(d for d in folder.iterdir() if d.is_dir() and (d / PLAN_FILE).is_file())
    return f"the split plan folder inside it, {' or '.join(str(d) for d in inside)}" if inside else None


def load_plan(dir_or_file: str | Path, check_paths: bool = True) -> Plan:
    """Read `DIR/plan.json` (or the given .json file) and check it; `plan.root` is its folder."""
    path = Path(dir_or_file)
    folder = path if path.is_dir() else None
    if folder is not None:
        path = path / PLAN_FILE
    if os.path.lexists(path) and not path.is_file():
        # A FIFO, device or folder at plan.json (or a FIFO given as the .json), or a symbolic link that leads
        # nowhere (at either): there, but no plan, never read (a FIFO waits for a writer for ever); it was "no split
        # plan at", of a name the user can see.
        raise ModelFileError(
            f"{path} {not_a_file(path)}, not a split plan: pass the folder written by `dpupose split` (it holds a "
            f"{PLAN_FILE} file)"
        )
    if not path.is_file():
        if folder is not None and (folder / "model_qdq.onnx").is_file():  # the step before the split
            raise ModelFileError(
                f"no split plan at {path}: {folder} is a `dpupose quantize` folder; split it first, `dpupose split "
                f"{folder / 'model_qdq.onnx'} --out DIR --optimize`, and pass DIR"
            )
        if folder is not None and any((folder / n).is_file() for n in ("best.pt", "last.pt")):  # a training run
            raise ModelFileError(
                f"no split plan at {path}: {folder} is a training run; quantize and split it first, `dpupose "
                f"quantize --checkpoint {folder / 'best.pt'} --out Q` and `dpupose split Q/model_qdq.onnx --out DIR "
                "--optimize`, and pass DIR"
            )
        where = plan_folders_inside(folder) if folder is not None else None
        raise ModelFileError(
            f"no split plan at {path}: pass {where}"
            if where
            else f"no split plan at {path}: pass the folder written by `dpupose split` (it holds {PLAN_FILE})"
        )
    if path.suffix.lower() != ".json":
        raise ModelFileError(
            f"{path} is not a split plan: pass the folder written by `dpupose split` (the one holding {PLAN_FILE})"
        )
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); {RESPLIT}") from None
    plan = plan_from_dict(data, str(path), root=path.parent)
    if check_paths:
        check_files(plan, str(path))
    return plan


def save_plan(plan: Plan, directory: str | Path, check_paths: bool = True) -> Path:
    """Write `directory/plan.json` atomically after checking the plan; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = plan.to_dict()
    # Round-trip through the parser so that nothing unreadable is ever written.
    checked = plan_from_dict(loads_json(json.dumps(data)), f"plan for {directory}", root=directory)
    if check_paths:
        check_files(checked, f"plan for {directory}")
    return write_json(directory / PLAN_FILE, data)


# Ops that leave a heatmap's values as they are (layout, type, a Q/DQ pair): looked through to the op that made it.
SAME_VALUES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Cast", "QuantizeLinear",
               "DequantizeLinear")  # fmt: skip
# Of those, the ones that change the shape: past one, the axes a Softmax normalizes are not the heatmaps'.
RESHAPING = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")
SOFTMAX_EXPORT = (
    "export the softmaxed maps as the heatmaps output (a Reshape of the soft-argmax's softmax to (N, 16, H, W)) "
    "and split the model again"
)


def heatmaps_not_normalized(
    name: str,
    producer: Mapping[str, tuple[str, str, Sequence[str]] | tuple[str, str, Sequence[str], Mapping[str, object]]],
    where: str = "",
    opset: int = 0,
    constants: Mapping[str, object] | None = None,
    static: Mapping[str, Sequence[int | str]] | None = None,
) -> tuple[str | None, str | None]:
    """Follow heatmaps tensor `name` back through SAME_VALUES ops to the op that made it, in a graph given as
    `producer` (tensor -> (op_type, node name, inputs), or with the node's attributes as a fourth item).
    (why not, None) when that op is not a normalization (a Softmax, or a Div by a ReduceSum), (None, the tensor
    it started from) when the graph only passes on one of its inputs, (None, None) when the maps are
    normalized. A Softmax with no reshape between it and the heatmaps (N, J, H, W) normalizes each map only
    when it normalizes the last two axes, H and W: before opset 13 (`opset`, 0: the newest) with axis 2 or -2
    (it normalizes the axes from `axis` on, flattened); from opset 13 on a Softmax normalizes `axis` alone, so
    it is over each map's rows, columns or the joints, not over the map. A Div by a ReduceSum only when the
    ReduceSum sums what the Div divides (the same tensor, or the same through Identity ops), and only
    when the sum is over H and W alone (axes 2 and 3, or -2 and -1), kept (keepdims 1, the default), or
    not kept (keepdims 0) and given back by an Unsqueeze at exactly those axes, so that each map is divided
    by its own sum: before opset 13 the axes of both are their attribute, from opset 13 their second input,
    a constant looked up in `constants` (tensor -> value: initializers, Constant nodes), and no axes sum
    everything. A Softmax after a reshape only when its groups are each map's H * W values, read from the
    reshapes' shapes (_reshaped_softmax); where those are not known here, and for a Div by a ReduceSum after
    a reshape, it is taken as the maps' (a flat softmax over H * W, as the soft-argmax's). A size the graph
    reads with a Shape op is taken as any size, except where `static` (tensor -> its static shape at batch 1,
    a str for a symbolic size) gives the tensor's size at an axis other than 0: only the batch varies, so
    that size is the number (a joint count written as 16 is then the logits' 16 joints read with Shape).
    A tensor whose shape no Reshape or Flatten here gives has its static shape, the batch any size (so a -1
    in a reshape of the logits, torch's y.view(b, 16, -1), is what the other sizes leave)."""
    seen = set()
    reshaped = transposed = False
    top = name
    while name in producer and name not in seen:
        seen.add(name)
        op, node, inputs, *rest = producer[name]
        if op in SAME_VALUES and inputs:
            reshaped = reshaped or op in RESHAPING
            transposed = transposed or op == "Transpose"
            name = inputs[0]
            continue
        if op == "Softmax":
            newer = opset == 0 or opset >= 13
            axis = int(dict(rest[0] if rest else {}).get("axis", -1 if newer else 1))
            if reshaped:  # through a Transpose the order of the values is not the maps': not known here
                shapes = _Shapes(producer, constants or {}, static or {})
                why = None if transposed else _reshaped_softmax(top, inputs[0] if inputs else "", axis, newer, shapes)
                if why is None:
                    return None, None
                return f"the output of Softmax {node!r}{where} {why}, not over each map", None
            if not newer and axis in (2, -2):
                return None, None
            if newer:  # one axis
                what = {0: "the batch", 1: "the joints", 2: "each map's columns", 3: "each map's rows"}[axis % 4]
            else:  # the axes from `axis` on
                what = {0: "the whole batch", 1: "all the maps of an image together", 3: "each map's rows"}[axis % 4]
            return f"the output of Softmax {node!r}{where} over axis {axis} ({what}), not over each map", None
        divisor = _divisor_sum(inputs[1], producer) if op == "Div" and len(inputs) == 2 else None
        if divisor is not None:
            reduce_sum, unsqueeze = divisor
            why = _sum_of_another(inputs[0], reduce_sum, producer, constants or {})
            if why is None and reshaped:
                return None, None
            why = why or _sum_not_over_each_map(reduce_sum, opset, constants or {}, unsqueeze)
            if why is None:
                return None, None
            return f"the output of Div {node!r}{where} by {why}, not over each map", None
        return f"the output of {op} {node!r}{where}, not of a softmax", None
    return None, name


# A dimension's size as a coefficient times a product of symbols, (tensor, axis): the sizes the graph reads
# with Shape ops, each taken as any size (what is over each map must be so whatever they are), except those
# the static shapes give at an axis other than the batch's (0), which are numbers.
Dim = tuple[int, tuple[tuple[str, int], ...]]
ONE: Dim = (1, ())
# Ops whose output has their first input's shape (a Clip's other inputs are scalars): the sizes of a tensor and of
# an activation of it, read with Shape ops, are the same sizes.
SAME_SHAPE = ("Identity", "Cast", "QuantizeLinear", "DequantizeLinear", "Softmax", "LogSoftmax", "Relu", "LeakyRelu",
              "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Exp", "Log", "Neg", "Abs", "Sqrt", "Elu",
              "Selu", "Softplus", "Erf")  # fmt: skip


def _times(a: Dim, b: Dim) -> Dim:
    return a[0] * b[0], tuple(sorted(a[1] + b[1]))


def _product(dims: Sequence[Dim]) -> Dim:
    out = ONE
    for d in dims:
        out = _times(out, d)
    return out


def _same(a: Dim, b: Dim) -> bool | None:
    """Whether two sizes are equal: True or False when the graph says, None when one is a number and the other
    a product of sizes read with Shape ops (equal only for some inputs)."""
    if a == b:
        return True
    if bool(a[1]) != bool(b[1]):
        return None
    return False


class _Shapes:
    """The shapes of a graph's tensors, as far as Reshape and Flatten and their shape inputs (constants, or
    Shape, Gather, Concat, Unsqueeze, Squeeze, Cast and Mul of them) say, or else as `static` gives them
    (the batch, axis 0, any size: size); None where neither does."""

    def __init__(
        self,
        producer: Mapping[str, tuple],
        constants: Mapping[str, object],
        static: Mapping[str, Sequence[int | str]] | None = None,
    ) -> None:
        self.producer = producer
        self.constants = constants
        self.static = static or {}
        self.busy: set[str] = set()

    def _entry(self, t: str) -> tuple[str, Sequence[str], dict]:
        op, _, inputs, *rest = self.producer.get(t, ("", "", []))
        return op, inputs, dict(rest[0] if rest else {})

    def root(self, t: str) -> str:
        """`t`, looked back through ops that keep its shape: the tensor whose sizes the symbols name."""
        seen = set()
        while t not in seen and self._entry(t)[0] in SAME_SHAPE and self._entry(t)[1]:
            seen.add(t)
            t = self._entry(t)[1][0]
        return t

    def size(self, t: str, i: int) -> Dim:
        """Size `i` (>= 0) of tensor `t`, whose sizes are not known from its op here: the number its static
        shape gives, at an axis other than the batch's (0), or the symbol (tensor, axis) that stands for any
        size, the tensor being `t` looked back through ops that keep its shape (root)."""
        shape = self.static.get(t)
        if i > 0 and shape is not None and i < len(shape) and isinstance(shape[i], int) and shape[i] > 0:
            return (int(shape[i]), ())
        return (1, ((self.root(t), i),))

    def dim(self, t: str, i: int) -> Dim | None:
        dims = self.dims(t)
        if dims is not None:
            return dims[i] if -len(dims) <= i < len(dims) else None
        return self.size(t, i) if i >= 0 else None

    def dims(self, t: str) -> list[Dim] | None:
        if t in self.busy:  # a cycle
            return None
        self.busy.add(t)
        try:
            dims = self._dims(t)
        finally:
            self.busy.discard(t)
        # Not known from its op: its static shape, the batch any size (the symbol of the tensor it keeps the
        # shape of, as a Shape of it reads). Not for a reshape whose shape is not read here (a shape made
        # otherwise): its batch would be a symbol of its own, not the one its input's sizes carry.
        shape = self.static.get(t)
        if dims is None and shape is not None and self._entry(self.root(t))[0] not in RESHAPING:
            return [self.size(t, i) for i in range(len(shape))]
        return dims

    def _dims(self, t: str) -> list[Dim] | None:
        op, inputs, attrs = self._entry(t)
        if op in SAME_SHAPE and inputs:
            return self.dims(inputs[0])
        if op == "Flatten" and inputs:
            dims = self.dims(inputs[0])
            axis = int(attrs.get("axis", 1))
            if dims is None or not -len(dims) <= axis <= len(dims):
                return None
            axis += len(dims) if axis < 0 else 0
            return [_product(dims[:axis]), _product(dims[axis:])]
        if op != "Reshape" or len(inputs) < 2:
            return None
        shape = self.values(inputs[1])
        if shape is None:
            return None
        out: list[Dim | None] = []
        for i, v in enumerate(shape):
            if v == (0, ()) and not int(attrs.get("allowzero", 0)):
                v = self.dim(inputs[0], i)  # 0: the input's size there
                if v is None:
                    return None
            out.append(None if v == (-1, ()) else v)
        if None in out:  # -1: what the others leave of the input's size
            if out.count(None) > 1 or (given := self.dims(inputs[0])) is None:
                return None
            total, rest = _product(given), _product([d for d in out if d is not None])
            left = list(total[1])
            for sym in rest[1]:
                if sym not in left:
                    return None
                left.remove(sym)
            if rest[0] == 0 or total[0] % rest[0]:
                return None
            out[out.index(None)] = (total[0] // rest[0], tuple(left))
        return out  # type: ignore[return-value]

    def values(self, t: str) -> list[Dim] | None:
        """The values of a 1-D (or scalar) integer tensor, a shape: each a Dim."""
        value = self.constants.get(t)
        if value is not None:
            return [(int(v), ()) for v in _flat_ints(value)]
        op, inputs, attrs = self._entry(t)
        if op in ("Cast", "Identity", "Unsqueeze", "Squeeze") and inputs:
            return self.values(inputs[0])  # of a scalar or a 1-D shape: the same values
        if op == "Concat" and int(attrs.get("axis", 0)) in (0, -1):
            parts = [self.values(i) for i in inputs]
            return None if any(p is None for p in parts) else [d for p in parts for d in p]  # type: ignore[union-attr]
        if op == "Mul" and len(inputs) == 2:
            a, b = self.values(inputs[0]), self.values(inputs[1])
            if a is None or b is None or len(a) != len(b):
                return None
            return [_times(x, y) for x, y in zip(a, b)]
        if op == "Shape" and inputs:
            dims = self.dims(inputs[0])
            if dims is None:
                return None
            return dims[int(attrs.get("start", 0)) : int(attrs["end"]) if "end" in attrs else None]
        if op == "Slice" and inputs:  # a run of a shape (torch's flatten(2): Shape(y)[0:2]), step 1 only
            return self._slice(inputs, attrs)
        if op == "Gather" and len(inputs) == 2 and int(attrs.get("axis", 0)) == 0:
            index = self.constants.get(inputs[1])
            if index is None:
                return None
            picks = [int(i) for i in _flat_ints(index)]
            data_op, data_inputs, data_attrs = self._entry(inputs[0])
            if data_op == "Shape" and data_inputs and self.dims(data_inputs[0]) is None:
                start = int(data_attrs.get("start", 0))  # a shape of a tensor of sizes not known here
                if start < 0 or "end" in data_attrs or any(i < 0 for i in picks):
                    return None
                return [self.size(data_inputs[0], start + i) for i in picks]
            data = self.values(inputs[0])
            if data is None or not all(-len(data) <= i < len(data) for i in picks):
                return None
            return [data[i] for i in picks]
        return None

    def _slice(self, inputs: Sequence[str], attrs: dict) -> list[Dim] | None:
        """A Slice of a 1-D shape: starts, ends (and axes 0, steps 1) its inputs from opset 10, its attributes
        before; None for anything else (another axis or step, or values not constants)."""
        data = self.values(inputs[0])
        if data is None:
            return None
        keys = ("starts", "ends", "axes", "steps")
        if len(inputs) > 1:  # opset 10 on: inputs, "" or left out where not given
            named = dict(zip(keys, inputs[1:5]))
            given = {k: self.constants.get(n) for k, n in named.items() if n}
            if len(given) != len([n for n in named.values() if n]) or any(v is None for v in given.values()):
                return None  # one given, not as a constant
        else:
            given = {k: attrs[k] for k in keys if k in attrs}
        got = {k: [int(v) for v in _flat_ints(v)] for k, v in given.items()}
        starts, ends = got.get("starts", []), got.get("ends", [])
        if (
            len(starts) != 1
            or len(ends) != 1
            or got.get("axes", [0]) not in ([0], [-1])
            or got.get("steps", [1]) != [1]
        ):
            return None
        return data[starts[0] : ends[0]]


def _reshaped_softmax(top: str, softmax_input: str, axis: int, newer: bool, shapes: _Shapes) -> str | None:
    """Why a Softmax on `softmax_input`, reshaped (no Transpose) into the heatmaps `top`, does not normalize
    each map, or None when it does or when the shapes are not known here. With nothing but reshapes between,
    both hold the values in the same order, so it normalizes each map when its groups are each map's H * W
    values: from opset 13 (`newer`) the sizes before `axis` multiply to N * J, `axis` is of size H * W and
    the sizes after it are 1; before opset 13 the sizes before `axis` multiply to N * J (the rest, flattened,
    being H * W)."""
    dims, maps = shapes.dims(softmax_input), shapes.dims(top)
    if dims is None or maps is None or len(maps) != 4 or not -len(dims) <= axis < len(dims):
        return None
    a = axis % len(dims)
    before = _product(dims[:a])
    over, after = (dims[a], _product(dims[a + 1 :])) if newer else (_product(dims[a:]), ONE)
    n, j, h, w = maps
    nj, hw = _times(n, j), _times(h, w)
    if False not in (_same(before, nj), _same(over, hw), _same(after, ONE)):  # each map's H * W values
        return None  # (or not known to be otherwise)
    named = [  # (before, over, after): with N = 1 the image's maps are the batch's
        (ONE, n, _times(j, hw), "the batch"),
        (n, j, hw, "the joints"),
        (n, _times(j, hw), ONE, "all the maps of an image together"),
        (ONE, _product(maps), ONE, "the whole batch"),
        (_times(nj, h), w, ONE, "each map's rows"),
        (nj, h, w, "each map's columns"),
    ]
    what = next((v for b, o, r, v in named if _same(before, b) and _same(over, o) and _same(after, r)), "")
    return f"over axis {axis} of its input reshaped to {len(dims)} dimensions ({what or 'other values than a map'})"


def _passed_on(name: str, producer: Mapping[str, tuple]) -> str:
    """The tensor `name` is, looked back through Identity ops (which pass a tensor on unchanged)."""
    seen = set()
    while name not in seen and producer.get(name, ("",))[0] == "Identity" and producer[name][2]:
        seen.add(name)
        name = producer[name][2][0]
    return name


def _sum_of_another(
    dividend: str, reduce_sum: tuple, producer: Mapping[str, tuple], constants: Mapping[str, object]
) -> str | None:
    """Why a Div of `dividend` by a ReduceSum (a `producer` entry) is not a division by the dividend's own sum
    ('ReduceSum NAME of ...'), or None when the ReduceSum sums the dividend itself (_same_values): the same
    tensor, the same through Identity ops, or a second DequantizeLinear of the same quantized tensor. Anything
    else in between (a Q/DQ pair that rounds, a Cast, a Mul, a reshape) makes another tensor, whose sum is
    not the dividend's."""
    _, node, inputs, *_ = reduce_sum
    summed = inputs[0] if inputs else ""
    if _same_values(summed, dividend, producer, constants):
        return None
    return f"ReduceSum {node!r} of another tensor ({summed!r}, where the Div divides {dividend!r})"


# A DequantizeLinear's attributes with their defaults: two of one quantized tensor agree on all of them.
_DQ_DEFAULTS = {"axis": 1, "block_size": 0, "output_dtype": 0}


def _same_values(a: str, b: str, producer: Mapping[str, tuple], constants: Mapping[str, object]) -> bool:
    """Whether tensors `a` and `b` hold the same values as far as the graph says: the same tensor, looked back
    through Identity ops, or two DequantizeLinear of the same quantized tensor (as a quantizer with a Q/DQ
    pair per consumer writes one per reader) with the same attributes and the same scale and zero point: the
    same tensors, or constants of equal values (an absent zero point is 0)."""
    a, b = _passed_on(a, producer), _passed_on(b, producer)
    if a == b:
        return True
    entries = [producer.get(a, ("",)), producer.get(b, ("",))]
    if any(e[0] != "DequantizeLinear" or len(e[2]) < 2 for e in entries):
        return False
    (_, _, ins_a, *rest_a), (_, _, ins_b, *rest_b) = entries
    attrs_a = {**_DQ_DEFAULTS, **dict(rest_a[0] if rest_a else {})}
    attrs_b = {**_DQ_DEFAULTS, **dict(rest_b[0] if rest_b else {})}
    if _passed_on(ins_a[0], producer) != _passed_on(ins_b[0], producer) or attrs_a != attrs_b:
        return False
    zero_a, zero_b = (ins[2] if len(ins) > 2 else "" for ins in (ins_a, ins_b))
    return _same_constant(ins_a[1], ins_b[1], producer, constants, None) and _same_constant(
        zero_a, zero_b, producer, constants, 0
    )


def _same_constant(
    a: str, b: str, producer: Mapping[str, tuple], constants: Mapping[str, object], absent: int | None
) -> bool:
    """Whether operands `a` and `b` ("" where not given: `absent`, or never equal when None) are the same
    tensor (through Identity ops) or constants of equal values, shapes and types."""
    if a and b and _passed_on(a, producer) == _passed_on(b, producer):
        return True
    if not a and not b:
        return True
    values = [constants.get(_passed_on(t, producer)) if t else absent for t in (a, b)]
    if any(v is None for v in values):
        return False
    if not a or not b:  # one given, one absent: equal when the given one is all `absent`
        return all(v == absent for v in _flat_values(values[0] if a else values[1]))
    x, y = values
    same_type = str(getattr(x, "dtype", type(x))) == str(getattr(y, "dtype", type(y)))
    return same_type and getattr(x, "shape", None) == getattr(y, "shape", None) and _listed(x) == _listed(y)


def _listed(value: object) -> object:
    """A constant as nested lists (numpy's tolist), to compare by value."""
    return value.tolist() if hasattr(value, "tolist") else value


def _flat_values(value: object) -> list[object]:
    """The values of a constant, flattened: a list, a scalar or an array (numpy's, read with tolist)."""
    value = _listed(value)
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flat_values(item)]
    return [value]


# What a Softmax's axis or a ReduceSum's axes (mod 4) cover of the (N, J, H, W) heatmaps.
_SUM_OVER = {
    (0,): "the batch",
    (1,): "the joints",
    (2,): "each map's columns",
    (3,): "each map's rows",
    (1, 2, 3): "all the maps of an image together",
    (0, 1, 2, 3): "the whole batch",
}


def _divisor_sum(divisor: str, producer: Mapping[str, tuple]) -> tuple[tuple, tuple | None] | None:
    """(the ReduceSum, the Unsqueeze after it or None) that a Div's `divisor` is, looked back through Identity
    ops: a ReduceSum, or an Unsqueeze of one (a sum with keepdims 0 given its axes back); None otherwise."""
    entry = producer.get(_passed_on(divisor, producer), ("",))
    if entry[0] == "ReduceSum":
        return entry, None
    if entry[0] == "Unsqueeze" and entry[2]:
        inner = producer.get(_passed_on(entry[2][0], producer), ("",))
        if inner[0] == "ReduceSum":
            return inner, entry
    return None


def _axes(entry: tuple, opset: int, constants: Mapping[str, object]) -> list[int] | str:
    """The axes of a ReduceSum or an Unsqueeze (a `producer` entry): its attribute before opset 13, from
    opset 13 its second input, a constant ([] when it has none); why not when that input is not a constant."""
    op, node, inputs, *rest = entry
    if opset == 0 or opset >= 13:  # the axes are the second input, a constant
        name = inputs[1] if len(inputs) > 1 else ""
        value = constants.get(name) if name else []
        if value is None:
            where = "over" if op == "ReduceSum" else "at"
            return f"{op} {node!r} {where} axes not known here (its input {name!r} is not a constant)"
        return [int(a) for a in _flat_ints(value)]
    return [int(a) for a in _flat_ints(dict(rest[0] if rest else {}).get("axes", []))]


def _sum_not_over_each_map(
    reduce_sum: tuple[str, str, Sequence[str]] | tuple[str, str, Sequence[str], Mapping[str, object]],
    opset: int,
    constants: Mapping[str, object],
    unsqueeze: tuple | None = None,
) -> str | None:
    """Why a ReduceSum (a `producer` entry) that a Div of (N, J, H, W) maps divides by, or an `unsqueeze` of
    it, is not each map's own sum ('ReduceSum NAME over ...'), or None when it is: over axes 2 and 3 alone,
    with keepdims 1 and no Unsqueeze, or with keepdims 0 and an Unsqueeze at exactly those axes (of its 4-D
    output: 2 and 3, or -2 and -1), which gives the reduced axes back as 1s."""
    _, node, _, *rest = reduce_sum
    attrs = dict(rest[0] if rest else {})
    axes = _axes(reduce_sum, opset, constants)
    if isinstance(axes, str):
        return axes
    if not axes and (opset == 0 or opset >= 13) and int(attrs.get("noop_with_empty_axes", 0)):
        return f"ReduceSum {node!r} over no axes (noop_with_empty_axes: it sums nothing)"
    covered = tuple(sorted({a % 4 for a in axes})) if axes else (0, 1, 2, 3)
    if covered != (2, 3):
        what = _SUM_OVER.get(covered, "axes " + ", ".join(str(a) for a in covered))
        return f"ReduceSum {node!r} over axes {axes or 'all'} ({what})"
    kept = int(attrs.get("keepdims", 1))
    if unsqueeze is None:
        if not kept:
            return f"ReduceSum {node!r} over axes {axes} with keepdims 0 (its sums do not line up with the maps)"
        return None
    _, unode, *_ = unsqueeze
    if kept:
        return f"ReduceSum {node!r} over axes {axes} with keepdims 1, then Unsqueeze {unode!r} (more axes than maps)"
    back = _axes(unsqueeze, opset, constants)
    if isinstance(back, str):
        return f"ReduceSum {node!r} over axes {axes} with keepdims 0, then {back}"
    if len(back) != 2 or tuple(sorted({a % 4 for a in back})) != (2, 3):
        return (
            f"ReduceSum {node!r} over axes {axes} with keepdims 0, then Unsqueeze {unode!r} at axes {back}, not the "
            "summed ones (its sums do not line up with the maps)"
        )
    return None


def _flat_ints(value: object) -> list[int]:
    """The integers of a constant: a list, a scalar or an array (numpy's, read with tolist)."""
    value = value.tolist() if hasattr(value, "tolist") else value
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flat_ints(item)]
    return [int(value)]
