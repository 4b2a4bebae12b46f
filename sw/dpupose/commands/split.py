"""`dpupose split`: partition a quantized model between the DPU and the CPU (docs/split.md)."""

from __future__ import annotations

import argparse
import sys

from dpupose.commands.argtypes import config_name, given, given_path, output_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "split",
        help="partition a quantized (QDQ) model between the DPU and the CPU into a split plan",
        description=(
            "Assign every node of a whole-model QDQ ONNX (model_qdq.onnx from `dpupose quantize`) to the DPU or "
            "the CPU by the DPU configuration's operator rules, group them into subgraphs and write plan.json "
            "plus one ONNX file per subgraph into --out. Timings shown are predictions for the board."
        ),
    )
    p.add_argument(
        "model",
        type=given_path("the model_qdq.onnx from `dpupose quantize`"),
        help="whole-model QDQ ONNX (model_qdq.onnx from `dpupose quantize`)",
    )
    p.add_argument(
        "--config",
        type=config_name,
        metavar="NAME|PATH",
        help="DPU configuration: shipped name or .toml path (default: the Ultra96-V2's default, which "
        "`dpupose dpu list` names)",
    )
    p.add_argument("--out", type=output_dir, required=True, help="plan folder (replaced only if an earlier plan)")
    p.add_argument(
        "--cpu-from",
        type=given("a node name (`dpupose split --nodes` lists them)"),
        metavar="NODE",
        help="run NODE and every node after it on the CPU",
    )
    p.add_argument(
        "--optimize",
        action="store_true",
        help="weigh every legal cut and keep the highest predicted pipelined throughput on the board "
        "(within 1%%, the cut with the fewest subgraphs)",
    )
    p.add_argument(
        "--xmodel",
        type=given_path("the compiled .xmodel"),
        metavar="FILE",
        help="record the .xmodel that scripts/vitis_ai_quantize.sh compiled for the DPU subgraph (checked "
        "against NAME.dpupose.json beside it: the whole DPU part, or the plan given to the script with --plan), "
        "so that `dpupose run --backend vart` can run the plan; both are copied into --out, and the xmodel's "
        "sha256 recorded (loading the plan refuses another file copied over it)",
    )
    p.add_argument("--nodes", action="store_true", help="list every node's device and reason")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpupose.dpu.board import default_config_name
    from dpupose.split.optimize import format_candidates
    from dpupose.split.partition import SplitOptions, split_model

    config = args.config or default_config_name("ultra96v2")
    result = split_model(SplitOptions(args.model, config, args.out, args.cpu_from, args.optimize, args.xmodel))
    plan = result.plan
    if result.candidates:
        print(format_candidates(result.candidates))
        print()
    if args.nodes:
        width = max(len(r["node"]) for r in result.assignment)
        for r in result.assignment:
            print(f"  {r['node']:<{width}}  {r['op']:<16} {r['device'].upper()}  {r['reason']}")
        print()
    print(f"split {args.model} for {plan.dpu_config} ({plan.fingerprint}): {len(plan.subgraphs)} subgraph(s)")
    pred = result.prediction
    for sg in plan.subgraphs:
        ins = ", ".join(t.name for t in sg.inputs)
        outs = ", ".join(t.name for t in sg.outputs)
        ms = pred.subgraph_ms.get(sg.name, 0.0)
        line = f"  {sg.name:<6} {sg.device.upper()}  {ms:8.3f} ms predicted  {ins} -> {outs}"
        print(line)
        if sg.reason:
            print(f"         CPU because: {sg.reason}")
        if sg.xmodel:
            print(f"         compiled: {sg.xmodel} (for --backend vart)")
    jobs = (
        pred.cpu_ms
        - pred.boundary_ms
        - sum(pred.subgraph_ms.get(sg.name, 0.0) for sg in plan.subgraphs if not sg.is_dpu)
    )
    print(
        f"predicted on the board: DPU {pred.dpu_ms:.3f} ms, CPU {pred.cpu_ms:.3f} ms per frame "
        f"(boundaries {pred.boundary_ms:.3f} ms, DPU job calls {jobs:.3f} ms) -> {pred.pipelined_fps:.1f} FPS "
        f"pipelined, {pred.sequential_fps:.1f} FPS sequential"
    )
    for w in result.warnings:
        print(f"dpupose: warning: {w}", file=sys.stderr)
    print(f"wrote {result.folder}/plan.json and {len(plan.subgraphs)} ONNX file(s)")
    return 0
