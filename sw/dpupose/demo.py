"""`make demo`: the whole job on one model with the emulated DPU; everything under build/demo/.

    model (models/dpupose-synth/model.pt, or --model) -> quantize (cached under build/cache/quantized/)
      -> split for the default Ultra96-V2 configuration with --optimize (cached under build/cache/split/); for
         the shipped model, its shipped plan models/dpupose-synth/split (what a user deploys) instead
      -> split inference through dpupose.runtime on sample crops (exact DPU emulator) -> annotated images
      -> the bench table (dpupose.eval.bench; accuracy with the emulator's fast path)
      -> predicted best split per Ultra96-V2 configuration -> report.md, report.html and plots

Without the shipped model (a fresh clone before it lands) the demo makes a randomly initialised stand-in
under build/demo-standin/ and says so everywhere: its keypoints are meaningless, the timings are real.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from dpupose.commands.argtypes import given_path, int_at_least, output_dir, positive_int
from dpupose.dpu.paths import shipped_model
from dpupose.errors import UsageError, shortlist
from dpupose.fsio import loads_json, lock_output_folder, make_dirs, signals_deferred, write_json

DEFAULT_MODEL = shipped_model()
SHIPPED_PLAN = DEFAULT_MODEL.parent / "split"  # made from DEFAULT_MODEL (tests/test_shipped_plan.py)
STANDIN = Path("build") / "demo-standin" / "standin-224.pt"

log = logging.getLogger("dpupose.demo")


def main(argv: list[str] | None = None) -> int:
    from dpupose.cli import run_stoppable

    # A Ctrl-C or SIGTERM (during its parsing too) is said on one line, as every dpupose command's (cli.main).
    return run_stoppable(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    from dpupose.cli import Parser  # errors on one line, as dpupose's

    parser = Parser(prog="python -m dpupose.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=output_dir,
        default=Path("build/demo"),
        help="folder of the report and run (default build/demo); a file there at a name the demo writes "
        "that no demo wrote stops it",
    )
    parser.add_argument("--model", type=given_path("a checkpoint (.pt)"), help=f"checkpoint (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--num-images", type=positive_int, default=4, help="annotated images, exact emulator (default 4)"
    )
    parser.add_argument(
        "--num-samples", type=positive_int, default=16, help="bench samples, fast emulator (default 16)"
    )
    parser.add_argument(
        "--fps-frames", type=int_at_least(2), default=12, help="frames per host FPS measurement (default 12)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from dpupose.cli import quiet_libraries, run_reported

    quiet_libraries()
    # Its errors are said as every dpupose command's are (cli._main), `dpupose: error: ...`
    return run_reported(lambda: run(args), "the demo", verbose=False)


def _model(args: argparse.Namespace) -> tuple[Path, str | None]:
    from dpupose.eval.prepare import standin_checkpoint
    from dpupose.model.checkpoint import check_checkpoint_path

    if args.model is not None:
        return check_checkpoint_path(args.model, "--model"), None
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL, None
    note = (
        f"{DEFAULT_MODEL} is not here (it comes with the repository, not with the installed package): the demo "
        f"uses a randomly initialised stand-in network ({STANDIN}). Its keypoints and accuracy are meaningless; "
        "the pipeline, the split and the timings are real."
    )
    log.warning("%s", note)
    return standin_checkpoint(STANDIN), note


def exact_vs_fast(exact: list, fast: list, dpu_exact: list, dpu_fast: list) -> dict:
    """How far the fast emulator's results are from the exact one's: the frames' FrameResults and the DPU
    subgraphs' int8 outputs, in the same order."""
    import numpy as np

    from dpupose.data.joints import JOINT_NAMES

    d = np.stack([np.abs(a.coords - b.coords) for a, b in zip(exact, fast)])  # (frames, joints, 2)
    frame, joint, _ = np.unravel_index(int(d.argmax()), d.shape)
    diffs = [np.abs(a.astype(np.int64) - b.astype(np.int64)).ravel() for a, b in zip(dpu_exact, dpu_fast)]
    lsb = np.concatenate(diffs) if diffs else np.zeros(0, np.int64)
    return {
        "max_coord_diff": float(d.max()),
        "mean_coord_diff": float(d.mean()),
        "max_at": {
            "sample": int(exact[frame].index),
            "joint": JOINT_NAMES[joint] if joint < len(JOINT_NAMES) else str(joint),
        },
        "dpu_values": int(lsb.size),
        "dpu_values_differing": int(np.count_nonzero(lsb)),
        "dpu_max_lsb": int(lsb.max()) if lsb.size else 0,
    }


def annotated_images(plan_dir: Path, frames: list, out: Path) -> dict:
    """Split inference through dpupose.runtime on `frames` with the exact emulator; annotated JPEGs; how far
    the fast emulator is from it on the same frames."""
    import numpy as np

    from dpupose.runtime.backends import RunnerFactory
    from dpupose.runtime.executor import SplitExecutor
    from dpupose.runtime.frames import Frame
    from dpupose.runtime.imagefile import write_jpeg
    from dpupose.runtime.sinks import annotate
    from dpupose.split.plan import load_plan

    plan = load_plan(plan_dir)
    make_dirs(out)
    results: dict[bool, list] = {}
    dpu_outputs: dict[bool, list] = {}
    for exact in (True, False):
        ex = SplitExecutor(plan, RunnerFactory(plan, "emulate", exact=exact).create_all())
        results[exact], dpu_outputs[exact] = [], []
        try:
            t0 = time.perf_counter()
            for i, f in enumerate(frames):  # SplitExecutor.process, keeping the DPU subgraphs' int8 outputs
                prepared, env = ex.start(f)
                for k, sg in enumerate(plan.subgraphs):
                    ex.run_subgraph(k, env)
                    if sg.is_dpu:
                        dpu_outputs[exact] += [env[t.name][0] for t in sg.outputs]
                results[exact].append(ex.finish(Frame(i, f, f"sample{i}"), prepared, env))
            seconds = (time.perf_counter() - t0) / max(1, len(frames))
        finally:
            ex.close()
        if exact:
            exact_s = seconds
    tiles = []
    for r in results[True]:
        img = annotate(r)
        # an OSError on a full disk (imwrite returns False); marked, for the next demo to tell it from a user's image
        write_jpeg(out / f"sample_{r.index:02d}.jpg", img, comment=IMAGE_MARK)
        tiles.append(img)
    if tiles:
        write_jpeg(out / "samples.jpg", np.concatenate(tiles, axis=1), comment=IMAGE_MARK)
    return {
        "images": [f"images/sample_{r.index:02d}.jpg" for r in results[True]],
        "montage": "images/samples.jpg",
        "exact_seconds_per_frame": exact_s,
        "fast_seconds_per_frame": seconds,
        "exact_vs_fast": exact_vs_fast(results[True], results[False], dpu_outputs[True], dpu_outputs[False]),
        "keypoints": [r.to_json() for r in results[True]],
    }


def shipped_plan(model: Path, qdir: Path | None = None) -> Path | None:
    """The plan shipped with the default model (for it only), so that the demo runs what users deploy; the
    quick quantization above still gives the per-configuration comparison and the whole-model CPU rows.
    With `qdir` (that quantization), only while the plan was split from the same model_qdq.onnx: weights
    retrained into models/ (another width, say) before the plan was made again would have run the old
    plan's DPU part beside the new model's CPU rows."""

    from dpupose.fsio import sha256_file

    if model.resolve() != DEFAULT_MODEL.resolve() or not (SHIPPED_PLAN / "plan.json").is_file():
        return None
    if qdir is not None:
        try:
            recorded = loads_json((SHIPPED_PLAN / "plan.json").read_text(encoding="utf-8"))["model"]["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if recorded != sha256_file(qdir / "model_qdq.onnx"):
            log.warning(
                "%s was not split from the quantization the demo made of %s (its weights retrained since, or "
                "a fix point calibrated otherwise on this machine): the demo splits the model itself; after "
                "retraining, make the shipped plan again (docs/training.md)",
                SHIPPED_PLAN,
                model,
            )
            return None
    return SHIPPED_PLAN


# In a comment segment of each annotated image the demo writes: what tells it from a user's image of its name.
IMAGE_MARK = b"Written by python -m dpupose.demo"
REPORT_FILES = ("report.md", "report.html", "demo.json", "fps_rows.png", "fps_configs.png", "stages.png")


def _demo_output_names(num_images: int) -> list[str]:
    """The files the demo writes into --out (bench/ holds plan variants, which bench checks itself)."""
    return [*REPORT_FILES, *(f"images/sample_{i:02d}.jpg" for i in range(num_images)), "images/samples.jpg"]


def _written_by_the_demo(path: Path, earlier: bool) -> bool:
    """Whether the file at `path` (one of _demo_output_names) is one the demo wrote: demo.json by its
    generated_by, the report by the line it starts with, the plots by Matplotlib's name in them, the images
    by IMAGE_MARK in the comment write_jpeg puts after their JFIF header (has_jpeg_comment), or, in a folder
    holding an earlier demo's demo.json (`earlier`: a demo that finished), any image (earlier versions wrote
    no mark). Never a link: the demo writes through it, over the file elsewhere."""
    from dpupose.eval.demo_report import GENERATED
    from dpupose.fsio import read_own_json
    from dpupose.runtime.imagefile import has_jpeg_comment

    if not path.is_file() or path.is_symlink():  # a folder, a FIFO; a link: written through, to a file elsewhere
        return False
    if path.name == "demo.json":
        doc = read_own_json(path)
        return isinstance(doc, dict) and doc.get("generated_by") == "python -m dpupose.demo"
    if path.suffix == ".jpg":
        return earlier or has_jpeg_comment(path, IMAGE_MARK)  # as `dpupose run` tells its frames
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if path.suffix in (".md", ".html"):
        return GENERATED.encode() in head
    return b"Matplotlib" in head  # the plots (.png)


def check_out(out: Path, num_images: int) -> None:
    """Refuse, before any work, an --out holding a file at a name the demo writes that the demo did not write
    (a user's report.md or photo images/sample_00.jpg, a link to a file elsewhere): it would be written over."""
    earlier = _written_by_the_demo(out / "demo.json", earlier=False)
    theirs = [
        name
        for name in _demo_output_names(num_images)
        if os.path.lexists(out / name) and not _written_by_the_demo(out / name, earlier)
    ]
    if theirs:
        shown = shortlist(theirs)
        it = "it" if len(theirs) == 1 else "them"
        raise UsageError(
            f"--out {out} holds {shown}, which the demo did not write and would write over: move {it} elsewhere, "
            "or choose another --out"
        )


def run(args: argparse.Namespace) -> None:
    out: Path = args.out
    # A second demo into this folder (two `make demo`s) would mix its images, report and demo.json with this
    # one's: it is refused, naming this one. A demo refused later leaves no --out it made.
    with lock_output_folder(out, "python -m dpupose.demo"):
        check_out(out, args.num_images)
        _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> None:
    from dpupose.dpu.board import default_config_name
    from dpupose.dpu.config import list_configs, load_config
    from dpupose.eval.bench import BenchOptions, format_table, run_bench
    from dpupose.eval.bench_measure import load_samples
    from dpupose.eval.demo_report import write_report
    from dpupose.eval.prepare import QuantSettings, quantized, split_plan
    from dpupose.split.compare import best_split_per_config
    from dpupose.split.plan import load_plan

    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - start, 2)
        log.info("demo: %s done (%.1f s)", name, now - start)
        return now

    model, note = _model(args)
    t = step("model", t0)
    qdir = quantized(model, QuantSettings(num_calib=16, summary_samples=1))
    t = step("quantize", t)
    config = default_config_name("ultra96v2")
    plan_dir = shipped_plan(model, qdir) or split_plan(qdir, config, optimize=True)
    plan = load_plan(plan_dir)
    t = step("split", t)
    samples = load_samples("synthetic", None, max(args.num_samples, args.num_images), plan.input_size)
    images = annotated_images(plan_dir, samples.frames_bgr[: args.num_images], out / "images")
    t = step("annotated images", t)
    bench = run_bench(
        BenchOptions(
            plan=plan_dir,
            quantized=qdir,
            num_samples=args.num_samples,
            fps_frames=args.fps_frames,
            emulator="fast",
            work=out / "bench",
        )
    )
    table = format_table(bench)
    t = step("bench", t)
    configs = [c for c in list_configs() if load_config(c).board == "ultra96v2"]
    per_config = best_split_per_config(qdir / "model_qdq.onnx", configs)
    t = step("configurations", t)
    doc = {
        "generated_by": "python -m dpupose.demo",
        "model": str(model),
        "standin_note": note,
        "quantized": str(qdir),
        "plan": str(plan_dir),
        "dpu_config": plan.dpu_config,
        "images": images,
        "bench": {"info": bench.info, "rows": [r.to_json() for r in bench.rows]},
        "configurations": per_config,
        "seconds": timings,
    }
    timings["total"] = round(time.perf_counter() - t0, 2)
    with signals_deferred():  # the plots, report.md, report.html and demo.json of one run, not half of two
        write_report(out, doc, plan, table)
        write_json(out / "demo.json", doc)
    print(table)
    if note:
        print(f"\nnote: {note}")
    print(f"\nreport: {out}/report.md and {out}/report.html ({timings['total']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
