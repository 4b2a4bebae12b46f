"""The partitioner: whole-model QDQ ONNX + DPU configuration -> split plan folder (host only, onnx).

`split_model(SplitOptions(model, config, out, cpu_from=None, optimize=False))`:
1. read the QDQ model (`model_qdq.onnx` from `dpupose quantize`) into units and Q/DQ pairs
   (dpupose.split.graph); a float model without Q/DQ nodes is refused: the DPU runs INT8 only;
2. assign every unit to the DPU or the CPU by the configuration's operator rules (dpupose.dpu.ops via
   dpupose.split.assign); `cpu_from` forces a node and every node after it in topological order to the
   CPU; with `optimize`, the candidate cuts of dpupose.split.optimize are weighed and the one with the
   highest predicted pipelined throughput is kept;
3. group connected units into subgraphs (as many as the graph needs), cut each into its own ONNX file
   (dpupose.split.extract: checked with onnx.checker and ONNX Runtime) and write `plan.json` through
   dpupose.split.plan.save_plan. The folder is built next to `out` and renamed into place, so a failure
   leaves nothing half-written; an existing `out` is replaced only if it holds an earlier plan.

The plan's metadata records the source model, each unit's device and reason, and the predicted timings
(DPU performance model per DPU subgraph, Cortex-A53 model for the CPU side).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpupose.data.joints import NUM_JOINTS
from dpupose.errors import ModelFileError, UsageError
from dpupose.fsio import atomic_dir, check_replaceable, loads_json, not_a_file, sha256_file
from dpupose.quant.ir import OUTPUT_NAME as DPU_PART_OUTPUT
from dpupose.split.assign import DPU, Assignment, Group, assign, group
from dpupose.split.graph import QdqGraph, analyze, infer_shapes, load_onnx
from dpupose.split.plan import (
    PLAN_FILE,
    SOFTMAX_EXPORT,
    BoundaryTensor,
    InputSpec,
    ModelInfo,
    OutputNames,
    Plan,
    Subgraph,
    heatmaps_not_normalized,
    save_plan,
)

log = logging.getLogger(__name__)

GENERATED_BY = "dpupose split"
QUANTIZE_FIRST = (
    "it has no QuantizeLinear/DequantizeLinear nodes, so it is a float model and the DPU runs INT8 only: for "
    "dpupose's network run `dpupose quantize --checkpoint CKPT --out DIR` and split DIR/model_qdq.onnx; quantize "
    "a network of your own to QDQ with per-tensor power-of-two scales (docs/split.md, A model of your own)"
)


@dataclass(frozen=True)
class SplitOptions:
    model: Path
    config: str
    out: Path
    cpu_from: str | None = None
    optimize: bool = False
    xmodel: Path | None = None  # a compiled xmodel to record for the DPU subgraph it computes (check_xmodel)


@dataclass
class SplitResult:
    plan: Plan
    folder: Path
    assignment: list[dict[str, str]]  # per unit: node, op, device, reason
    prediction: Any  # dpupose.split.cost.Prediction of the chosen split
    dpu_estimates: dict[str, Any] = field(default_factory=dict)  # subgraph -> perf.Estimate
    candidates: list[Any] = field(default_factory=list)  # optimizer candidates (empty without --optimize)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Io:
    """A model's graph inputs, outputs and shapes: what image_input and model_outputs read of a QdqGraph."""

    graph_inputs: list[str]
    graph_outputs: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def layout_for(rank: int) -> str:
    """Layout letters of a float (CPU-side) tensor, as the ONNX Runtime runner names them."""
    return "NCHW" if rank == 4 else "NCDEFG"[:rank]


def model_outputs(g: QdqGraph | _Io, source: Path) -> OutputNames:
    """The coords (N, J, 2) and heatmaps (N, J, H, W) outputs of a whole pose model."""
    coords = next((t for t in g.graph_outputs if len(g.shapes.get(t, ())) == 3 and g.shapes[t][-1] == 2), None)
    heat = next((t for t in g.graph_outputs if len(g.shapes.get(t, ())) == 4), None)
    if "coords" in g.graph_outputs:
        coords = "coords"
    if "heatmaps" in g.graph_outputs:
        heat = "heatmaps"
    if coords is None and heat == DPU_PART_OUTPUT and len(g.graph_outputs) == 1:  # image -> logits: a DPU part
        raise ModelFileError(
            f"{source} has no coords output (N, 16, 2): split the whole model (model_qdq.onnx from `dpupose "
            "quantize`), not its DPU part"
        )
    heat_shape = g.shapes.get(heat, ()) if heat is not None else ()
    if coords is None and len(heat_shape) == 4 and heat_shape[1] == NUM_JOINTS and len(g.graph_outputs) == 1:
        raise ModelFileError(
            f"{source} outputs only {heat!r} {list(g.shapes.get(heat, []))}, heatmaps without coordinates: the "
            f"runtime reads the joints from a coords output (N, {NUM_JOINTS}, 2) too, so export the model with both, "
            "e.g. a soft-argmax (each heatmap's softmax times the pixel centres, summed) after the heatmaps"
        )
    if coords is None:
        shapes = ", ".join(f"{t} {list(g.shapes.get(t, []))}" for t in g.graph_outputs)
        raise ModelFileError(
            f"{source} outputs {shapes}, not a pose model's coords (N, {NUM_JOINTS}, 2) and heatmaps (N, "
            f"{NUM_JOINTS}, H, W): split and run handle pose models only; `dpupose dpu estimate MODEL --config "
            "NAME` predicts the DPU time of any other model"
        )
    joints = g.shapes[coords][1] if len(g.shapes.get(coords, ())) == 3 else None
    if joints != NUM_JOINTS or (heat is not None and g.shapes[heat][1] != NUM_JOINTS):
        shapes = ", ".join(f"{t} {list(g.shapes.get(t, []))}" for t in (coords, heat) if t is not None)
        raise ModelFileError(
            f"{source} outputs {shapes}: the runtime reports and draws the {NUM_JOINTS} MPII joints, so the "
            f"outputs must be (N, {NUM_JOINTS}, 2) coordinates and (N, {NUM_JOINTS}, H, W) heatmaps"
        )
    return OutputNames(coords, heat)


def check_fixed_input_sizes(model: Any, source: Path) -> None:
    """Refuse a graph input of a symbolic (or zero) size past the batch, as torch.onnx.export's dynamic_axes for
    a height, width or channel count writes it, naming the input and those axes, or of a batch of 0, before
    shape inference (which cannot work out the model's sizes from it and said only 'needs a static shape')."""
    from dpupose.dpu.graph import check_fixed_input, declared_sizes  # dpu estimate's refusal, in its words

    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        check_fixed_input(vi, f"{source}: ")
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value <= 0:  # shape inference cannot run it either
            raise ModelFileError(
                f"{source}: input {vi.name!r} {declared_sizes(vi)} has a batch of {dims[0].dim_value}, which holds no "
                "image: export the model with a batch of 1 or a symbolic one (torch.onnx.export's dynamic_axes for "
                f"the batch: {{{vi.name!r}: {{0: 'batch'}}}})"
            )


def image_input(g: QdqGraph | _Io, source: Path) -> InputSpec:
    if len(g.graph_inputs) != 1:
        raise ModelFileError(f"{source} takes {len(g.graph_inputs)} inputs; a pose model takes one image")
    name = g.graph_inputs[0]
    shape = g.shapes.get(name)
    if shape is None or len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise ModelFileError(
            f"{source}: input {name!r} is {shape}; expected a square RGB image (N, 3, S, S), channels first: "
            "dpupose run letterboxes every frame into S x S, so export the model with such an input"
        )
    if isinstance(shape[0], int) and shape[0] > 1:
        raise ModelFileError(
            f"{source}: input {name!r} is {shape}, a fixed batch of {shape[0]}; dpupose run feeds one frame at a "
            "time, so export the model with a batch of 1 or a symbolic one (torch.onnx.export's "
            "dynamic_axes={'" + name + "': {0: 'batch'}})"
        )
    return InputSpec(name, (1, 3, shape[2], shape[3]))


def resolve_cpu_from(g: QdqGraph, name: str) -> dict[int, str]:
    """Units forced to the CPU by --cpu-from NAME (a node name, or a tensor it produces)."""
    unit = g.unit_by_name(name)
    if unit is None:
        named = [u.name for u in g.units if not u.name.startswith("/")]  # module paths, not export temporaries
        # A torch export without module paths (/f/f.2/Conv): its network's ops, not its head's last ones.
        layers = [u.name for u in g.units if u.op in ("Conv", "ConvTranspose", "Gemm", "Add", "Resize")]
        examples = ", ".join((named or layers or [u.name for u in g.units])[-6:])
        if name in g.constants or any(n.name == name for n in g.nodes):  # there, but no op of the network
            raise UsageError(
                f"--cpu-from {name!r} is a constant of the model (a weight, its quantization or a folded "
                f"value), not an op the network runs; give the op that uses it, a node name such as {examples}"
            )
        raise UsageError(
            f"--cpu-from {name!r}: no such node (or tensor) in the model; give a node name such as {examples} "
            "(`dpupose split MODEL --out DIR --nodes` lists every node)"
        )
    reason = f"forced to the CPU (--cpu-from {name})"
    return {u.index: reason for u in g.units[unit.index :]}


def dpu_fix_point(g: QdqGraph, grp: Group, tensor: str, side: str) -> int:
    """The fix point at which DPU subgraph `grp` takes or gives `tensor`: its Q/DQ pair's when it is a DQ
    output, else that of the subgraph's own QuantizeLinear nodes of the float tensor (the image, a CPU
    output); ModelFileError unless there is one."""
    if tensor in g.pair_of_dq_output:
        return g.pairs[g.pair_of_dq_output[tensor]].fix_point
    own = set(grp.nodes)
    fps = {g.pairs[k].fix_point for k in g.pairs_of_tensor.get(tensor, []) if g.pairs[k].q in own}
    if len(fps) != 1:
        raise ModelFileError(f"DPU subgraph {grp.name}: {side} {tensor!r} has no single fix point")
    return fps.pop()


def _boundary(g: QdqGraph, grp: Group, tensor: str, side: str) -> BoundaryTensor:
    shape = g.shapes[tensor]
    if grp.device != DPU:
        return BoundaryTensor(tensor, shape, layout_for(len(shape)), "float32", None)
    fp = dpu_fix_point(g, grp, tensor, side)
    if len(shape) == 4:
        n, c, h, w = shape
        return BoundaryTensor(tensor, (n, h, w, c), "NHWC", "int8", fp)
    return BoundaryTensor(tensor, shape, layout_for(len(shape)), "int8", fp)


def unit_rows(g: QdqGraph, a: Assignment) -> list[dict[str, str]]:
    return [{"node": u.name, "op": u.op, "device": a.devices[u.index], "reason": a.reasons[u.index]} for u in g.units]


def _model_name(source: Path) -> str:
    return source.parent.name if source.stem in ("model_qdq", "model") and source.parent.name else source.stem


def _dpu_unit_ms(g: QdqGraph, cfg: Any, board: Any, model_name: str) -> dict[int, float]:
    """DPU milliseconds of every unit the rules put on the DPU (one estimate per rules-only DPU subgraph)."""
    from dpupose.dpu.perf import estimate
    from dpupose.split.cost import unit_dpu_ms
    from dpupose.split.extract import build_subgraph

    groups = group(g, assign(g, cfg))
    ests = [
        estimate(build_subgraph(g, grp, model_name, check=False), cfg, board) for grp in groups if grp.device == DPU
    ]
    return unit_dpu_ms(g, ests)


XMODEL_PART_SUFFIX = ".dpupose.json"  # beside NAME.xmodel: what scripts/vitis_ai_quantize.sh compiled


def xmodel_part_file(xmodel: Path) -> Path | None:
    """NAME.dpupose.json beside `xmodel`, None where nothing is at that name (the xmodel is then the whole DPU
    part). Anything but a regular file there (a folder, a FIFO, a device, a symbolic link that leads nowhere) is
    refused, named: taken for none, the xmodel was checked as the whole DPU part (and a FIFO, read, would wait for
    a writer for ever)."""
    side = xmodel.with_name(xmodel.stem + XMODEL_PART_SUFFIX)
    if side.is_file():
        return side
    if os.path.lexists(side):
        raise ModelFileError(
            f"{side} {not_a_file(side)}, where scripts/vitis_ai_quantize.sh writes which part {xmodel.name} "
            "computes: move it away (the xmodel is then taken as the whole DPU part), or compile again with the script"
        )
    return None


def xmodel_part(xmodel: Path, image: str) -> tuple[str, str, str]:
    """(input, output, where that was read) of the DPU part an xmodel computes: from NAME.dpupose.json,
    which scripts/vitis_ai_quantize.sh writes beside it, else the whole DPU part (image -> logits)."""

    side = xmodel_part_file(xmodel)
    if side is None:
        return image, DPU_PART_OUTPUT, f"no {xmodel.stem}{XMODEL_PART_SUFFIX} beside it, so taken as the whole DPU part"
    try:
        part = loads_json(side.read_text(encoding="utf-8"))
        src, dst, how = part["input"], part["output"], part.get("split")
        if not (isinstance(src, str) and isinstance(dst, str) and src and dst):
            raise TypeError("input/output must be names")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ModelFileError(
            f"{side} is damaged ({exc}); compile again with scripts/vitis_ai_quantize.sh, which writes it"
        ) from None
    return src, dst, f"as {side.name} says" + (f": compiled for a split with {how}" if isinstance(how, str) else "")


def xmodel_fingerprint(xmodel: Path) -> int | None:
    """The DPU fingerprint NAME.dpupose.json says the xmodel was compiled for (None: it does not say)."""

    side = xmodel_part_file(xmodel)
    if side is None:
        return None
    try:
        value = loads_json(side.read_text(encoding="utf-8")).get("fingerprint")
        return None if value is None else int(value, 16)
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        raise ModelFileError(
            f"{side} is damaged ({exc}); compile again with scripts/vitis_ai_quantize.sh, which writes it"
        ) from None


def xmodel_macs(xmodel: Path) -> int | None:
    """The multiply-accumulates NAME.dpupose.json says the xmodel's part has (None: it does not say)."""

    side = xmodel_part_file(xmodel)
    if side is None:
        return None
    try:
        value = loads_json(side.read_text(encoding="utf-8")).get("macs")
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelFileError(
            f"{side} is damaged ({exc}); compile again with scripts/vitis_ai_quantize.sh, which writes it"
        ) from None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_xmodel(
    xmodel: Path, groups: list[Group], image: str, fingerprint: int | None = None, dpu_macs: int | None = None
) -> None:
    """--xmodel: the file exists, the split has one DPU subgraph, the DPU part the xmodel computes
    (xmodel_part), the xmodel was compiled for `fingerprint` where NAME.dpupose.json says what for, and from
    a network of the DPU subgraph's multiply-accumulates (`dpu_macs`) where it says them: the names and shapes
    are the same for a model of another width. VART checks the tensors' shapes on the board."""
    if not xmodel.is_file():
        what = not_a_file(xmodel, "does not exist")
        raise UsageError(f"--xmodel {xmodel} {what}; give the .xmodel that vai_c_xir compiled")
    if xmodel.suffix != ".xmodel":  # copied into the plan folder by name: plan.json or dpu0.onnx would be replaced
        raise UsageError(f"--xmodel {xmodel} is not named .xmodel; give the .xmodel that vai_c_xir compiled")
    if xmodel.stat().st_size == 0:
        raise ModelFileError(f"--xmodel {xmodel} is empty; compile it again (scripts/vitis_ai_quantize.sh)")
    src, dst, where = xmodel_part(xmodel, image)
    dpu = [grp for grp in groups if grp.device == DPU]
    shown = "; ".join(f"{grp.name}: {', '.join(grp.inputs)} -> {', '.join(grp.outputs)}" for grp in dpu) or "none"
    if len(dpu) != 1 or list(dpu[0].inputs) != [src] or list(dpu[0].outputs) != [dst]:
        raise UsageError(
            f"--xmodel {xmodel.name} computes {src} -> {dst} ({where}), but this split's DPU subgraphs are "
            f"{shown}: split without --xmodel, compile for that plan (scripts/vitis_ai_quantize.sh --plan "
            "PLAN_DIR) and split again the same way with --xmodel (docs/quantization.md)"
        )
    compiled_for = xmodel_fingerprint(xmodel)
    if fingerprint is not None and compiled_for is not None and compiled_for != fingerprint:
        raise UsageError(
            f"--xmodel {xmodel.name} was compiled for DPU fingerprint 0x{compiled_for:x} (its "
            f"{xmodel.stem}{XMODEL_PART_SUFFIX}), but this split is for 0x{fingerprint:x}: VART would refuse it on "
            "that DPU. Split with --config of the configuration compiled for, or compile with the arch.json of "
            "this split's configuration"
        )
    from dpupose.split.a53 import same_macs

    compiled_macs = xmodel_macs(xmodel)
    if dpu_macs is not None and compiled_macs is not None and not same_macs(compiled_macs, dpu_macs):
        raise UsageError(
            f"--xmodel {xmodel.name} was compiled from a network of {compiled_macs / 1e9:.3f} GMAC (its "
            f"{xmodel.stem}{XMODEL_PART_SUFFIX}), but this split's DPU subgraph is {dpu_macs / 1e9:.3f} GMAC: "
            "another --width, decoder or input size. Compile this model (scripts/vitis_ai_quantize.sh "
            "--checkpoint of the model quantized for this split) and split again with --xmodel"
        )


def _prepare_out(out: Path, xmodel: Path | None = None) -> None:
    """An existing --out is replaced only if it is an earlier plan folder holding only what that split
    wrote (a compiled .xmodel, notes or the source model there would be lost), and its own compiled
    .xmodel only when an --xmodel of that name takes its place."""
    from dpupose.split.plan import recorded_files

    written, generated_by = recorded_files(out)
    if (out / PLAN_FILE).is_file() and not written and generated_by is None:
        raise UsageError(
            f"{out / PLAN_FILE} is not a readable split plan, so the files it would have named cannot be told "
            "from files of yours: remove the folder yourself, or choose another --out"
        )
    written += [Path(w).stem + XMODEL_PART_SUFFIX for w in written if w.endswith(".xmodel")]
    check_replaceable(out, PLAN_FILE, written, "an earlier split plan folder")
    replaced_by = xmodel.name if xmodel is not None else None
    compiled = [w for w in written if w.endswith(".xmodel") and (out / w).is_file() and w != replaced_by]
    if compiled:
        raise UsageError(
            f"{out} holds {', '.join(compiled)}, the compiled DPU subgraph its plan records (made in the Vitis "
            f"AI docker image); splitting again into it would delete it: pass --xmodel {out / compiled[0]} to "
            "record it in the new plan (the split must give the same DPU subgraph), move it elsewhere, or "
            "choose another --out"
        )


def split_model(opts: SplitOptions, a53: Any = None) -> SplitResult:
    """Partition `opts.model` for `opts.config` and write the plan folder `opts.out`."""
    from dpupose.dpu.board import load_board
    from dpupose.dpu.config import load_config
    from dpupose.dpu.fingerprint import fingerprint, fingerprint_hex
    from dpupose.dpu.perf import estimate
    from dpupose.dpu.resources import check_fit
    from dpupose.split import a53 as a53_model
    from dpupose.split.cost import predict
    from dpupose.split.extract import build_subgraph, save_model
    from dpupose.split.optimize import RULES_ONLY, best, candidates, evaluate, format_candidates

    source = Path(opts.model)
    cfg = load_config(opts.config)
    board = load_board(cfg.board)
    _prepare_out(opts.out, Path(opts.xmodel) if opts.xmodel is not None else None)
    model = load_onnx(source)
    # A pose model's input and outputs first: a classifier or a detector told to quantize (or to quantize
    # otherwise) would be refused only after that work.
    check_fixed_input_sizes(model, source)
    inferred = infer_shapes(model)
    io = _Io([vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}])
    io.graph_outputs, io.shapes = [vi.name for vi in model.graph.output], inferred[0]
    image_input(io, source)
    model_outputs(io, source)
    g = analyze(model, inferred)
    if not g.quantized:
        raise UsageError(f"cannot split {source}: {QUANTIZE_FIRST}")
    inp = image_input(g, source)
    outputs = model_outputs(g, source)
    name = _model_name(source)
    a53 = a53 or a53_model.default_model()
    forced = resolve_cpu_from(g, opts.cpu_from) if opts.cpu_from is not None else {}
    dpu_ms = _dpu_unit_ms(g, cfg, board, name)
    cands = []
    if opts.optimize:
        # With --cpu-from, every candidate keeps NODE on: the cuts weighed are those before it, and the base is not
        # the rules alone (it was labelled 'rules only' beside the cuts, with the forced cut's figures).
        rules = f"rules and --cpu-from {opts.cpu_from}" if opts.cpu_from is not None else RULES_ONLY
        cands = candidates(g, cfg, forced, dpu_ms, a53, rules)
        chosen = best(cands)
        log.debug("%s", format_candidates(cands))
    else:
        chosen = evaluate(g, cfg, forced, dpu_ms, a53)
    groups = chosen.groups
    if opts.xmodel is not None:
        dpu_macs = sum(
            a53_model.node_counts(g.nodes[i], g.shapes)[0] for grp in groups if grp.device == DPU for i in grp.nodes
        )
        check_xmodel(Path(opts.xmodel), groups, inp.name, fingerprint(cfg), dpu_macs)

    warnings: list[str] = []
    if outputs.heatmaps is not None:
        from onnx.helper import get_attribute_value

        from dpupose.dpu.ops import model_opset

        # the attributes the walk reads: a Softmax's axis, a ReduceSum's or an Unsqueeze's axes (before opset
        # 13) and flags, and to know a reshape's shape, a Reshape's allowzero, a Shape's start and end, a
        # Flatten's, a Gather's or a Concat's axis
        read = ("axis", "axes", "keepdims", "noop_with_empty_axes", "allowzero", "start", "end")
        producer = {
            o: (
                n.op_type,
                n.name,
                list(n.input),
                {a.name: get_attribute_value(a) for a in n.attribute if a.name in read},
            )
            for n in g.nodes
            for o in n.output
        }
        why, _ = heatmaps_not_normalized(
            outputs.heatmaps, producer, opset=model_opset(g.model), constants=g.constants, static=g.shapes
        )
        if why is not None:
            warnings.append(
                f"the heatmaps output {outputs.heatmaps!r} is {why}: the keypoint confidence and --decode local read "
                "maps that each sum to 1, so `dpupose run` gives no confidence for this plan (null) and refuses "
                f"--decode local and --min-confidence; {SOFTMAX_EXPORT}"
            )
    fit = check_fit(cfg, board)
    if not fit.fits:
        warnings.append(
            f"{cfg.name} does not fit the {board.title} ({'; '.join(fit.reasons)}): the plan and its predicted "
            "speed are for a DPU that cannot be built on that board (`dpupose dpu fit` lists what does)"
        )
    with atomic_dir(opts.out) as tmp:
        subgraphs = []
        estimates = {}
        for grp in groups:
            model = build_subgraph(g, grp, name)
            path = save_model(model, tmp / f"{grp.name}.onnx")
            xmodel = xmodel_sha256 = None
            if grp.device == DPU:
                estimates[grp.name] = estimate(model, cfg, board)
                warnings += _emulator_warning(path, grp.name)
                if opts.xmodel is not None:
                    xmodel = Path(opts.xmodel).name
                    shutil.copyfile(opts.xmodel, tmp / xmodel)
                    xmodel_sha256 = sha256_file(tmp / xmodel)  # loading refuses another compile copied over it
                    side = xmodel_part_file(Path(opts.xmodel))
                    if side is not None:  # travels with the xmodel: a later split --xmodel from here checks it
                        shutil.copyfile(side, tmp / side.name)
            subgraphs.append(
                Subgraph(
                    name=grp.name,
                    device=grp.device,
                    file=path.name,
                    inputs=tuple(_boundary(g, grp, t, "input") for t in grp.inputs),
                    outputs=tuple(_boundary(g, grp, t, "output") for t in grp.outputs),
                    reason=grp.reason,
                    sha256=sha256_file(path),
                    xmodel=xmodel,
                    xmodel_sha256=xmodel_sha256,
                )
            )
        prediction = predict(g, groups, dpu_ms, a53)
        rows = unit_rows(g, chosen.assignment)
        metadata: dict[str, Any] = {
            # Relative to the plan folder, so that a plan and its quantized model move together (and a
            # plan kept in a repository names no path of the machine that made it).
            "source_model": os.path.relpath(source.resolve(), Path(opts.out).resolve()),
            "board": board.name,
            "dpu_config_options": cfg.to_dict(),  # predictions need the configuration, not only its name
            "cpu_from": opts.cpu_from,
            "optimized": opts.optimize,
            "predicted": {
                **prediction.to_dict(),
                "dpu_subgraphs": {k: e.to_dict() for k, e in estimates.items()},
                "a53_model": a53.to_dict(),
            },
            "assignment": rows,
        }
        if cands:
            metadata["candidates"] = [c.to_dict() for c in cands]
        if warnings:
            metadata["warnings"] = warnings
        plan = Plan(
            fingerprint=fingerprint_hex(cfg),
            dpu_config=cfg.name,
            model=ModelInfo(name, inp.shape[2], sha256_file(source)),
            input=inp,
            outputs=outputs,
            subgraphs=tuple(subgraphs),
            generated_by=GENERATED_BY,
            metadata=metadata,
        )
        save_plan(plan, tmp)
    from dpupose.split.plan import load_plan

    result = SplitResult(load_plan(opts.out), opts.out, rows, prediction, estimates, cands, warnings)
    _check_prediction(result)
    return result


def _emulator_warning(path: Path, name: str) -> list[str]:
    """The emulator runs a subset of the DPU's ops (qdq_graph.EMULATED); say if not this one
    (in SplitResult.warnings, which `dpupose split` writes to stderr: not logged as well)."""
    from dpupose.runtime.emulator import EmulatorRunner, shape_checked
    from dpupose.runtime.qdq_graph import load_program

    try:
        if any(shape_checked(s) for s in load_program(path).steps):
            EmulatorRunner(path).check_shapes()  # a global average pool's window, a resize's sizes: with the shapes
    except ModelFileError as exc:
        return [f"DPU subgraph {name} cannot run on the emulator ({exc}); use --backend cpu on a PC"]
    return []


def _check_prediction(result: SplitResult) -> None:
    """The per-layer DPU sums used for the candidates equal the per-file estimates (same model, same layers)."""
    for name, est in result.dpu_estimates.items():
        summed = result.prediction.subgraph_ms.get(name, 0.0)
        if not math.isclose(summed, est.latency_ms, rel_tol=1e-6, abs_tol=1e-9):
            log.warning("DPU subgraph %s: per-layer sum %.4f ms differs from its estimate %.4f ms", name, summed,
                        est.latency_ms)  # fmt: skip
