"""`dpupose quantize`: power-of-two INT8 quantization of a checkpoint for the DPU (docs/quantization.md)."""

from __future__ import annotations

import argparse

from dpupose.commands.argtypes import given, given_path, nonnegative_int, output_dir, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="quantize a checkpoint for the DPU (power-of-two INT8, QDQ ONNX, fix points, accuracy summary)",
        description=(
            "Calibrate power-of-two int8 fix positions for the DPU part, check the DPU's shift constraints "
            "and write FP32 and QDQ ONNX files, fix_points.json and summary.json into --out (atomically)."
        ),
    )
    p.add_argument(
        "--checkpoint",
        type=given_path("a checkpoint (.pt)"),
        required=True,
        help="checkpoint written by `dpupose train` or `dpupose export`",
    )
    p.add_argument(
        "--calib-data", choices=("synthetic", "mpii"), default="synthetic", help="calibration set (default synthetic)"
    )
    p.add_argument(
        "--data-root",
        type=given_path("the data set folder"),
        help="data set folder (mpii: required; synthetic: default a generated set cached under build/data/)",
    )
    p.add_argument("--num-calib", type=positive_int, default=100, help="number of calibration samples (default 100)")
    p.add_argument("--out", type=output_dir, required=True, help="output folder (replaced only if an earlier result)")
    p.add_argument(
        "--engine",
        choices=("native", "vai_q"),
        default="native",
        help="native (the default): this project's quantizer; vai_q: vai_q_pytorch inside the Vitis AI docker image",
    )
    p.add_argument(
        "--qat-epochs", type=nonnegative_int, default=0, help="quantization-aware fine-tuning epochs (default 0)"
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="calibration batch size (default 8)")
    p.add_argument(
        "--summary-samples",
        type=positive_int,
        default=32,
        help="samples the emulator runs for summary.json (default 32)",
    )
    p.add_argument(
        "--target",
        type=given("a DPU target name, e.g. DPUCZDX8G_ISA1_B1600"),
        help="vai_q 3.0+ only (2.5 has none): DPU target name, e.g. DPUCZDX8G_ISA1_B1600",
    )
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="random seed for sample selection and QAT (default 0)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpupose.quant.pipeline import QuantizeConfig, quantize

    doc = quantize(
        QuantizeConfig(
            checkpoint=args.checkpoint,
            out=args.out,
            calib_data=args.calib_data,
            data_root=args.data_root,
            num_calib=args.num_calib,
            engine=args.engine,
            qat_epochs=args.qat_epochs,
            batch_size=args.batch_size,
            summary_samples=args.summary_samples,
            target=args.target,
            seed=args.seed,
        )
    )
    print(f"wrote {args.out} ({doc['engine']} engine, {doc['calibration']['samples']} calibration samples)")
    acc = doc.get("accuracy")
    if acc:
        agree = acc["fp32_vs_int8"]
        ort = acc["ort_vs_emulator_logits_lsb"]
        print(
            f"FP32 vs INT8 (emulated DPU) on {acc['samples']} samples: mean joint distance "
            f"{agree['coords_mean_distance_px']:.2f} px, "
            f"heatmap JSD {agree['heatmap_js_divergence_mean']:.4f}"
        )
        if "vs_labels" in acc:
            lab = acc["vs_labels"]
            print(f"vs labels: FP32 {lab['fp32_euclidean_px']:.2f} px, INT8 {lab['int8_euclidean_px']:.2f} px")
        print(f"ONNX Runtime fast path vs emulator (logits): max {ort['max']} LSB, mean {ort['mean']:.3f} LSB")
        worst = min(
            (row for row in acc["per_layer"] if row["sqnr_db"] is not None),
            key=lambda row: row["sqnr_db"],
            default=None,
        )
        if worst:
            print(f"lowest per-layer SQNR: {worst['sqnr_db']:.1f} dB at {worst['tensor']}")
    return 0
