"""`dpupose deploy-check`: per-layer int8 comparison of the DPU emulator with a second source."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from dpupose.commands.argtypes import given, given_path, nonnegative_int, output_dir, output_file, positive_int
from dpupose.fsio import loads_json, not_a_file

# --num and --calib-data when left out (None in the parser, to tell them given from left out)
DEFAULT_NUM = 2
DEFAULT_CALIB_DATA = "synthetic"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "deploy-check",
        help="compare every layer's int8 output of the DPU emulator with torch, ONNX Runtime or board dumps",
        description=(
            "Run a DPU-subgraph QDQ file (or a `dpupose quantize` folder) through the bit-accurate emulator "
            "and a second source, report each layer's difference in LSBs and the first layer that diverges "
            "(exit 1 if one does)."
        ),
    )
    p.add_argument(
        "model",
        type=given_path("a QDQ ONNX file or a quantize folder"),
        help="QDQ ONNX of a DPU subgraph, or a `dpupose quantize` output folder",
    )
    p.add_argument(
        "--against",
        type=given("torch, ort or a folder of dumped tensors"),
        default="torch",
        help="torch (the default: float64 fake quantization), ort (ONNX Runtime), or a folder of dumped tensors",
    )
    p.add_argument("--calib-data", choices=("synthetic", "mpii"), help="input images (default synthetic)")
    p.add_argument(
        "--data-root",
        type=given_path("the data set folder"),
        help="data set folder for --calib-data (mpii: required; synthetic: default a generated set cached under "
        "build/data/)",
    )
    p.add_argument("--num", type=positive_int, help="number of input images (default 2)")
    p.add_argument(
        "--tolerance",
        type=nonnegative_int,
        help="LSBs a layer may differ before it counts (default 0; 1 with --against ort, as ONNX Runtime rounds "
        "ties to even and the DPU rounds them up)",
    )
    p.add_argument(
        "--dump",
        type=output_dir,
        help="also write the emulator's tensors here (<tensor>.npy, int8 NHWC, and dump.json; a file there of those "
        "names that no --dump wrote stops the check)",
    )
    p.add_argument("--json", type=output_file, metavar="FILE", help="also write the full report as JSON to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpupose.errors import ModelFileError, UsageError
    from dpupose.fsio import check_can_create, write_json
    from dpupose.quant.compare import deploy_check
    from dpupose.quant.data import calibration_batches
    from dpupose.runtime.qdq_graph import EMULATED, NotADpuSubgraph, NotEmulated, load_program

    if args.json is not None and args.json.exists() and not _is_report(args.json):
        raise UsageError(
            f"--json {args.json} exists and is not an earlier `dpupose deploy-check` report; choose another "
            "--json (or move the file)"
        )
    for out in (args.dump, args.json):  # now, not after the calibration images and the check
        if out is not None:
            check_can_create(out)
    _refuse_plan_or_checkpoint(args.model)
    path = args.model / "dpu_part_qdq.onnx" if args.model.is_dir() else args.model
    if not path.is_file() and args.model.is_dir():  # a model card's folder: its plan one level down (split/)
        with contextlib.suppress(OSError):
            for inside in sorted(d for d in args.model.iterdir() if (d / "plan.json").is_file()):
                _refuse_plan_or_checkpoint(inside)
        ckpt = next((args.model / f for f in ("best.pt", "model.pt", "last.pt") if (args.model / f).is_file()), None)
        if ckpt is not None:  # a run folder: 'runs/x/dpu_part_qdq.onnx not found' named no next step
            raise UsageError(
                f"{args.model} holds a checkpoint, not a DPU subgraph: quantize it first, `dpupose quantize "
                f"--checkpoint {ckpt} --out DIR`, and check DIR"
            )
    if not path.is_file():
        why = not_a_file(path, "not found")  # a FIFO, /dev/null or a link to nothing is named as such
        raise ModelFileError(f"{path} {why}; give a QDQ ONNX file or a `dpupose quantize` output folder")
    try:
        program = load_program(path)
    except NotADpuSubgraph as exc:
        raise ModelFileError(
            f"{path}: {exc}; deploy-check takes a DPU subgraph (dpu_part_qdq.onnx of a `dpupose quantize` folder, "
            "or a dpuN.onnx of a split plan), not a whole model or a CPU subgraph"
        ) from None
    except NotEmulated as exc:
        raise ModelFileError(
            f"{path}: {exc}: deploy-check checks the emulator's layers, and the emulator runs {EMULATED} "
            "only, so this subgraph can be checked on the board alone"
        ) from None
    # The second source's packages, before any work (the calibration images: a minute of synthetic scenes made,
    # then a missing PyTorch named): torch's reference reads the file with onnx too. A dump folder needs neither.
    for module in {"torch": ("torch", "onnx"), "ort": ("onnx",)}.get(args.against, ()):
        importlib.import_module(module)
    shape = program.inputs[0].shape_nchw if len(program.inputs) == 1 else ()
    # The options of the input images, as given: a dump folder holding the inputs feeds them instead, and these
    # went unused without a word (--num 5 compared the dump's 2 images).
    for_images = [o for o, v in (("--num", args.num), ("--calib-data", args.calib_data)) if v is not None]
    args.num = DEFAULT_NUM if args.num is None else args.num
    args.calib_data = args.calib_data or DEFAULT_CALIB_DATA
    made: list[bool] = []

    def images():  # only when no dump folder holds the inputs
        import numpy as np

        made.append(True)

        # Calibration images are (N, 3, S, S): a subgraph of another input (not 3 channels, S x 2S) was fed them
        # and failed in the emulator ('has shape (1, 16, 16, 3), expected (N, (16, 32, 3))'). A symbolic size but
        # the batch is refused before this (quant.compare.deploy_check).
        square = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]) and shape[2] == shape[3]
        if not square or shape[1] != 3:
            from dpupose.quant.compare import dump_name

            files = ", ".join(f"{dump_name(b.tensor)}.npy" for b in program.inputs)
            raise UsageError(
                f"the subgraph's input {shape} is not a square image of a fixed size (N, 3, S, S), as calibration "
                f"images are, so none can feed it: give --against DUMP_DIR holding its input as {files} (int8, "
                "NHWC), e.g. dumped on the board"
            )
        batches = calibration_batches(args.calib_data, args.data_root, args.num, shape[2], count_option="--num")
        return np.concatenate(list(batches))

    report = deploy_check(path, images, args.against, args.tolerance, args.dump)
    if for_images and not made:
        print(
            f"note: {' and '.join(for_images)} unused: the emulator ran on the inputs {args.against} holds "
            f"({report['samples']} image(s))",
            file=sys.stderr,
        )
    print(f"{'tensor':60s} {'fp':>3s} {'max':>4s} {'mean':>8s} {'differ':>7s}")
    for row in report["layers"]:
        fp = report["fix_points"][row["tensor"]]
        print(
            f"{row['tensor'][:60]:60s} {fp:3d} {row['max_lsb']:4d} {row['mean_lsb']:8.4f} "
            f"{100 * row['mismatch_fraction']:6.2f}%"
        )
    first = report["first_divergent"]
    tolerance = report["tolerance_lsb"]
    # Why the default against ort is 1 LSB; a --tolerance the user chose has reasons of its own.
    why = " (ONNX Runtime rounds ties to even, the DPU up)" if args.against == "ort" and args.tolerance is None else ""
    if first is None:
        print(f"all {len(report['layers'])} layers agree with {args.against} within {tolerance} LSB{why}")
    else:
        worst = next(row["max_lsb"] for row in report["layers"] if row["tensor"] == first)
        print(f"first layer that diverges (> {tolerance} LSB): {first}, {worst} LSB off")
    if args.json:
        write_json(args.json, report)
    return 0 if first is None else 1


def _refuse_plan_or_checkpoint(given) -> None:
    """UsageError naming the file to give instead, for what a newcomer gives in place of a DPU subgraph: a
    split plan's folder or its plan.json (one of its dpuN.onnx), or a checkpoint (quantize it first)."""

    from dpupose.errors import UsageError
    from dpupose.formats import not_onnx

    plan = given / "plan.json" if given.is_dir() else given
    kind = not_onnx(plan) if plan.is_file() else None
    if kind == "checkpoint":
        raise UsageError(
            f"{given} is a PyTorch checkpoint, not ONNX: quantize it first, `dpupose quantize --checkpoint {given} "
            "--out DIR`, and check DIR"
        )
    if kind == "plan":
        subgraphs = loads_json(plan.read_text(encoding="utf-8")).get("subgraphs")
        files = [
            str(plan.parent / sg["file"])
            for sg in (subgraphs if isinstance(subgraphs, list) else [])
            if isinstance(sg, dict) and sg.get("device") == "dpu" and isinstance(sg.get("file"), str)
        ]
        which = f": {' or '.join(files)}" if files else " (its dpuN.onnx)"
        raise UsageError(
            f"{given} is a split plan{' folder' if given.is_dir() else ''}; deploy-check takes one DPU subgraph "
            f"file{which}"
        )


def _is_report(path) -> bool:
    """Whether `path` holds a report an earlier deploy-check wrote (which --json may replace)."""
    from dpupose.fsio import read_own_json

    doc = read_own_json(path)
    return isinstance(doc, dict) and {"tolerance_lsb", "first_divergent", "layers"} <= doc.keys()
