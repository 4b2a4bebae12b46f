"""`dpupose zoo`: reference networks (standard architectures, random weights) as ONNX files.

Used to calibrate and validate the DPU performance model; ``pose_dpu`` is this project's pose network's
DPU part with random weights (for estimates before a trained model exists). torch is imported only when
exporting.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dpupose.commands.argtypes import int_at_least, output_file

NETWORKS = ("mobilenet_v2", "mobilenet_v1", "resnet50", "pose_dpu")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("zoo", help="reference networks (random weights) for the performance model")
    p.set_defaults(group_parser=p)
    sub = p.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND")
    s = sub.add_parser("export", help="export a reference network to ONNX (FP32, BatchNorm folded)")
    s.add_argument("network", choices=NETWORKS, help="the reference network to export")
    s.add_argument("--out", type=output_file, required=True, metavar="X.onnx", help="output ONNX file")
    s.add_argument(
        "--input-size",
        type=int_at_least(1, 2048),
        default=224,
        help="square input size in pixels, a multiple of 32 (default 224)",
    )
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from dpupose.dpu import zoo
    from dpupose.errors import UsageError

    if Path(args.out).exists() and not args.force:
        raise UsageError(f"--out {args.out} exists; pass --force to replace it")
    path = zoo.export(args.network, args.out, args.input_size)
    print(f"{path}: {args.network}, input 1x3x{args.input_size}x{args.input_size}, random weights")
    return 0
