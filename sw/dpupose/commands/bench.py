"""`dpupose bench`: the original study's table on this machine (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys

from dpupose.commands.argtypes import (
    config_name,
    given_path,
    int_at_least,
    output_dir,
    output_file,
    positive_int,
    quantize_folder,
    thread_count,
)
from dpupose.fsio import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="reproduce the original study's table (accuracy, host FPS measured, board FPS predicted)",
        description=(
            "Run the study's four rows (split INT8 DPU + INT8 CPU, split INT8 DPU + FP32 CPU, CPU ONNX INT8, CPU "
            "ONNX FP32) on the same samples: Euclidean error, JSD, PCKh@0.5, host FPS measured sequentially and "
            "pipelined (DPU emulated), and the predicted Ultra96-V2 FPS. Without --plan or --quantized the "
            "checkpoint is quantized and split first (cached under build/cache/)."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--plan", type=given_path("the split plan folder"), help="plan folder from `dpupose split`")
    src.add_argument(
        "--checkpoint",
        type=given_path("a checkpoint (.pt)"),
        help="checkpoint to quantize and split (default: the shipped model)",
    )
    p.add_argument(
        "--quantized",
        type=quantize_folder,
        help="`dpupose quantize` folder (split here; also gives the CPU rows): alone, or with --plan for its CPU "
        "rows; not with --checkpoint",
    )
    p.add_argument(
        "--config",
        type=config_name,
        metavar="NAME|PATH",
        help="DPU configuration for splitting: shipped name or .toml path (default: the Ultra96-V2's default, "
        "which `dpupose dpu list` names); not with --plan, which is split already",
    )
    p.add_argument(
        "--num-samples", type=positive_int, default=32, help="evaluation samples, the same for every row (default 32)"
    )
    p.add_argument(
        "--fps-frames", type=int_at_least(2), default=16, help="frames per host FPS measurement (default 16)"
    )
    p.add_argument(
        "--data", choices=("synthetic", "mpii"), default="synthetic", help="evaluation data (default synthetic)"
    )
    p.add_argument(
        "--data-root",
        type=given_path("the data set folder"),
        help="data set folder (mpii: required; synthetic: default a generated set cached under build/data/)",
    )
    p.add_argument(
        "--emulator",
        choices=("exact", "fast"),
        default="exact",
        help="DPU emulator for the split rows' accuracy: exact integer arithmetic (the default), or ONNX Runtime's "
        "QDQ path",
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        help="ONNX Runtime intra-op threads per subgraph (default: ONNX Runtime's, all cores)",
    )
    p.add_argument(
        "--work", type=output_dir, default="build/bench", help="folder for the plan variants (default build/bench)"
    )
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--out", type=output_file, help="also write the rows and settings to this JSON file")
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    """Before minutes of work: --work (a folder or new: output_dir) and --out (a new file or an earlier bench's)
    can be written."""
    from dpupose.errors import UsageError
    from dpupose.fsio import check_can_create, read_own_json

    for path in (args.work / "probe", args.out):  # a place nothing can be written fails now, not at the end
        if path is not None:
            check_can_create(path)
    if args.out is not None and args.out.exists():
        doc = read_own_json(args.out)
        if not isinstance(doc, dict) or doc.get("generated_by") != "dpupose bench":
            raise UsageError(
                f"--out {args.out} exists and is not an earlier `dpupose bench` result; choose another --out "
                "(or move the file)"
            )


def run(args: argparse.Namespace) -> int:
    from dpupose.eval.bench import BenchOptions, format_table, run_bench

    _check_outputs(args)
    result = run_bench(
        BenchOptions(
            plan=args.plan,
            quantized=args.quantized,
            checkpoint=args.checkpoint,
            config=args.config,
            num_samples=args.num_samples,
            fps_frames=args.fps_frames,
            data=args.data,
            data_root=args.data_root,
            emulator=args.emulator,
            threads=args.threads,
            work=args.work,
        )
    )
    rows = [r.to_json() for r in result.rows]
    if args.out:
        from dpupose.fsio import write_json

        write_json(args.out, {"generated_by": "dpupose bench", **result.info, "rows": rows})
    if args.json:
        print(json_text(rows, indent=2))
        if "skipped" in result.info:
            print(f"note: skipped {result.info['skipped']}", file=sys.stderr)
    else:
        print(format_table(result))
    return 0
