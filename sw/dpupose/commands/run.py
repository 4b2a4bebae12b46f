"""`dpupose run`: split inference on frames from a folder, a video or a camera (board and PC).

Board-safe: this command and everything it imports work without torch and without the onnx package.
"""

from __future__ import annotations

import argparse
import sys

from dpupose.commands.argtypes import (
    float_at_least,
    float_in,
    given,
    int_at_least,
    nonnegative_int,
    output_dir,
    positive_int,
    thread_count,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run split inference on images, a video or a camera",
        description="Run a split plan (from `dpupose split`) on frames: pre-processing, the DPU subgraph(s) "
        "(VART on the board, the bit-accurate emulator on a PC) and the CPU subgraph(s) (ONNX Runtime), "
        "optionally pipelined across frames. Writes keypoints as JSON lines and annotated frames.",
    )
    p.add_argument(
        "--plan",
        "--model",
        dest="plan",
        required=True,
        metavar="DIR",
        type=given("the split plan folder"),
        help="split plan folder",
    )
    p.add_argument(
        "--backend",
        choices=["vart", "emulate", "cpu"],
        help="vart: the board's DPU; emulate: bit-accurate DPU emulator; cpu: ONNX Runtime for every subgraph "
        "(default: $DPUPOSE_BACKEND, else vart where pynq_dpu is installed, cpu there for a plan without its "
        "compiled .xmodel, else emulate)",
    )
    p.add_argument("--source", required=True, metavar="SRC", help="image folder, image, video file, or camera:N")
    p.add_argument(
        "--out",
        type=output_dir,
        metavar="DIR",
        help="write keypoints.jsonl, annotated frames/video and run.json here (an earlier run's there are replaced; "
        "a file of those names that no run wrote stops the run)",
    )
    p.add_argument("--pipeline", action="store_true", help="overlap pre-processing, DPU, CPU and post-processing")
    p.add_argument(
        "--drop-late",
        action="store_true",
        help="live camera: drop frames the pipeline cannot take in time (counted); implies --pipeline",
    )
    p.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="stop after N frames (default: the whole source)"
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="ONNX Runtime threads per CPU subgraph (default: ONNX Runtime's, all cores)",
    )
    p.add_argument(
        "--overlay",
        type=given("the overlay folder (or its dpu.bit)"),
        metavar="DIR",
        help="overlay folder (or its dpu.bit) with dpu.bit, dpu.hwh, dpu.xclbin, arch.json: vart programs it (default: "
        "a dpu.bit in the plan folder); emulate and cpu only check its arch.json against the plan",
    )
    p.add_argument(
        "--dpu-jobs",
        type=int_at_least(1, 16),
        default=2,
        metavar="N",
        help="DPU jobs in flight when pipelined (default 2)",
    )
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (q or Esc stops)")
    p.add_argument(
        "--annotate",
        choices=["auto", "frames", "video", "none"],
        default="auto",
        help="annotated output under --out: frames/ (auto for an image folder or one image), annotated.mp4 (auto for "
        "videos and cameras), or none (default auto)",
    )
    p.add_argument(
        "--fast-emulator",
        action="store_true",
        help="emulate backend: ONNX Runtime's QDQ path with the DPU's rounding (the same integers but for what ONNX "
        "Runtime does not model, docs/quantization.md; not always faster, docs/runtime.md)",
    )
    p.add_argument(
        "--min-confidence",
        type=float_in(0.0, 1.0),
        default=0.0,
        help="do not draw joints below this confidence (0 to 1, default 0); refused above 0 for a plan whose "
        "heatmaps are not normalized over each map (a Softmax, or a Div by a ReduceSum, over H and W; its confidence "
        "is null)",
    )
    p.add_argument(
        "--decode",
        choices=["dsnt", "local"],
        default="dsnt",
        help="dsnt: keypoints from the plan's DSNT output (the default); local: re-read from its heatmaps within 4 "
        "heatmap pixels of each maximum (stays on the stronger of two candidate places; refused for heatmaps that "
        "are not normalized over each map; see docs/runtime.md)",
    )
    p.add_argument(
        "--camera-retries",
        type=nonnegative_int,
        default=5,
        metavar="N",
        help="reconnect attempts when a camera stops (default 5)",
    )
    p.add_argument(
        "--camera-retry-delay",
        type=float_at_least(0.0, 3600.0),
        default=1.0,
        metavar="S",
        help="seconds between attempts (default 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dpupose.runtime.app import RunOptions
    from dpupose.runtime.app import run as run_plan
    from dpupose.runtime.frames import FPS_WINDOW_TEXT

    opts = RunOptions(
        plan=Path(args.plan),
        source=args.source,
        backend=args.backend,
        out=Path(args.out) if args.out else None,
        pipeline=args.pipeline,
        drop_late=args.drop_late,
        max_frames=args.max_frames,
        threads=args.threads,
        overlay=Path(args.overlay) if args.overlay else None,
        dpu_jobs=args.dpu_jobs,
        show=args.show,
        annotate=args.annotate,
        exact=not args.fast_emulator,
        min_confidence=args.min_confidence,
        decode=args.decode,
        camera_retries=args.camera_retries,
        camera_retry_delay_s=args.camera_retry_delay,
        # A line a second on a terminal; in a log (a service's journal, CI) one every 30 s, as the bars write.
        report_every_s=1.0 if sys.stderr.isatty() else 30.0,
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = run_plan(opts, progress)
    s = summary.stats
    print(f"backend {summary.backend}: {s.frames} frames in {s.wall_seconds:.2f} s, {s.fps:.2f} FPS", end="")
    print(f" over the whole run ({'pipelined' if s.pipelined else 'sequential'}; stage bound {s.bound_fps:.2f} FPS)")
    if s.recent_fps is not None:
        print(f"  at the end {s.recent_fps:.2f} FPS ({FPS_WINDOW_TEXT})")
    for st in s.stages.values():
        if st.frames:
            print(f"  {st.name:<16} {st.mean * 1e3:8.2f} ms/frame  x{st.workers}")
    if s.dropped or summary.skipped:
        print(f"  dropped (late) {s.dropped}, skipped (unreadable) {summary.skipped}")
    if summary.peak_rss_mb is not None:
        print(f"  peak memory {summary.peak_rss_mb:.0f} MB (this process, resident)")
    for path in summary.outputs:
        print(f"  wrote {path}")
    if summary.interrupted:
        print(
            f"dpupose: {'terminated' if summary.terminated else 'interrupted'}; outputs so far are kept",
            file=sys.stderr,
        )
        return 143 if summary.terminated else 130
    if s.frames == 0:  # nothing decoded, or a video that holds no frame (the notebook says the same)
        from dpupose.runtime.sources import no_frame_message

        print(f"dpupose: error: {no_frame_message(args.source, summary.skipped)}", file=sys.stderr)
        return 2
    return 0
