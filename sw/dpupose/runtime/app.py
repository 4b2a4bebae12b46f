"""One `dpupose run`: plan -> guard -> runners -> frames -> results -> outputs (board-safe).

Outputs under --out DIR: `keypoints.jsonl` (one line per frame, flushed as it goes), annotated frames
(`frames/` for an image folder, `annotated.mp4` for a video or camera) and `run.json` (stage timings and
throughput, written at the end). However the run ends (all frames, --max-frames, Ctrl-C, a camera that
disappears, an error), what was produced so far is finalized.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dpupose.errors import DpuposeError, Terminated, UsageError, shortlist
from dpupose.fsio import (
    loads_json,
    lock_output_folder,
    same_entry,
    same_file,
    sync_file,
    what_is_at,
    within,
    write_json,
)
from dpupose.runtime.backends import ENV_VAR as BACKEND_VAR
from dpupose.runtime.backends import RunnerFactory, resolve_backend
from dpupose.runtime.draw import draw_label
from dpupose.runtime.executor import SplitExecutor, check_decode
from dpupose.runtime.frames import FrameResult
from dpupose.runtime.imagefile import has_jpeg_comment
from dpupose.runtime.pipeline import Pipeline, RunStats
from dpupose.runtime.sinks import (
    FRAME_MARK,
    DisplaySink,
    FolderSink,
    FpsMeter,
    JsonLinesSink,
    Sink,
    VideoSink,
    annotate,
    frame_stems,
    may_write_frame,
    record_frame_names,
    refuse_non_file,
    shared_stems,
)
from dpupose.runtime.sources import FrameSource, ImageFolderSource, VideoFileSource, is_image_source, open_source
from dpupose.split.plan import load_plan

log = logging.getLogger(__name__)

ANNOTATE = ("auto", "frames", "video", "none")


@dataclass
class RunOptions:
    plan: Path
    source: str
    backend: str | None = None  # None: $DPUPOSE_BACKEND, then what is installed
    out: Path | None = None
    pipeline: bool = False
    drop_late: bool = False
    max_frames: int | None = None
    threads: int | None = None  # ONNX Runtime intra-op threads
    overlay: Path | None = None
    dpu_jobs: int = 2  # DPU jobs in flight when pipelined
    show: bool = False
    annotate: str = "auto"
    exact: bool = True  # emulator: bit-accurate integer path (False: ONNX Runtime fast path)
    min_confidence: float = 0.0
    decode: str = "dsnt"  # "dsnt" (the plan's coordinates) or "local" (re-read from the heatmaps)
    report_every_s: float = 1.0
    camera_retries: int = 5  # reconnect attempts after a camera stops delivering frames
    camera_retry_delay_s: float = 1.0


@dataclass
class RunSummary:
    backend: str
    stats: RunStats
    outputs: list[Path] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False  # by Ctrl-C, or by SIGTERM (then terminated too)
    guard: str | None = None
    decode: str = "dsnt"
    terminated: bool = False
    peak_rss_mb: float | None = None  # the process's peak resident memory when the run ended (measured)

    def to_dict(self, folder: Path | None = None) -> dict[str, Any]:
        """`outputs` relative to `folder` (run.json's own: the same whatever the working directory and however
        --out was written), else as they were opened."""
        return {
            "backend": self.backend,
            "decode": self.decode,
            "interrupted": self.interrupted,
            "skipped_inputs": self.skipped,
            "fingerprint_check": self.guard,
            "peak_rss_mb": self.peak_rss_mb,
            "outputs": [str(p) if folder is None else os.path.relpath(p, folder) for p in self.outputs],
            **self.stats.to_dict(),
        }


def _check_source_is_not_an_output(opts: RunOptions, names: list[str], removed: list[Path]) -> None:
    """Refuse a --source that this run's outputs would overwrite (`names`: an earlier run's frames/ or video),
    or that is, or is the folder of, a file of an earlier run this run removes before it starts (`removed`:
    what `_earlier_annotations` found, the files `_remove_earlier_annotations` removes)."""
    assert opts.out is not None
    src = Path(opts.source)
    if opts.source.startswith("camera:") or not src.exists():
        return
    # Compared by name and by folder and inode too (fsio.same_entry): a bind mount of --out elsewhere is a name that
    # resolve() does not tie to it, and the earlier run's video read through it was replaced by this run's. A hard
    # link under another name keeps its file when the output's name is replaced or removed, and is read. A folder
    # (frames/, or the folder of a file in it) has no other name but a mount's, whatever that is called: one folder
    # by device and inode (fsio.within, fsio.same_file), as a bind mount of frames/ itself.
    given, src = src, src.resolve()
    for name in names:
        target = (opts.out / name).resolve()
        if within(given, target) or same_entry(given, target):
            raise UsageError(
                f"--source {opts.source} is where this run writes {name} (under --out {opts.out}): it would "
                "overwrite its own input; choose another --out"
            )
    for path in removed:
        resolved = path.resolve()
        if src in (resolved, resolved.parent) or same_entry(given, path) or same_file(given, path.parent):
            raise UsageError(
                f"--source {opts.source} is an earlier run's {path.relative_to(opts.out).parts[0]} under --out "
                f"{opts.out}, which this run removes before it starts: choose another --out"
            )


def _check_nothing_of_yours_is_replaced(opts: RunOptions, mode: str, source: FrameSource, removed: list[Path]) -> None:
    """Refuse, before anything is removed or written, a file under --out that this run would write over and that
    is no run's: a keypoints.jsonl whose first line is no run's record, or that is a link (to another run's: the
    run empties and writes the file it points to), or a run.json that is no run's (another program's, or the
    user's: `_holds_a_run` does not take them for a run's, and the run emptied or replaced them all the same),
    an annotated video at the names a video run writes, or a file (or link) in frames/ at
    a name this run writes a frame under, which an earlier run did not write (`removed`: what
    `_earlier_annotations` found, removed before this run writes) and that bears no FRAME_MARK (a run's frame
    all the same, where its records are gone): a user's photo there, or a frame without FRAME_MARK of a run
    that did not finish (an earlier version's), was replaced by the new frame.
    A video's frame numbers are bounded by its length where it gives one; a camera's are not."""
    assert opts.out is not None
    out = opts.out
    taken: list[str] = []
    keypoints = out / "keypoints.jsonl"
    # A link, even to a run's keypoints.jsonl elsewhere (a folder copied as links, `cp -rs`) or to nothing: the
    # run would empty and write the file it points to, which is not this folder's to replace.
    if keypoints.is_symlink() or (
        _has_data(keypoints) and not (_starts_with(keypoints, RECORD_KEYS, line=True) or _cut_first_record(keypoints))
    ):
        taken.append("keypoints.jsonl")
    # run.json alike: a link to a run's elsewhere made this a run's folder, the link removed for this run's record
    if (out / "run.json").is_symlink() or (
        _has_data(out / "run.json") and not _starts_with(out / "run.json", RUN_KEYS)
    ):
        taken.append("run.json")
    gone = set(removed)
    if mode == "video":
        taken += [name for name in EARLIER_VIDEOS if os.path.lexists(out / name) and out / name not in gone]
    frames = out / "frames"
    if mode == "frames" and frames.is_dir():
        if isinstance(source, ImageFolderSource):
            stems: frozenset[str] | None = frame_stems([p.name for p in source.files])
        else:
            stems = None
        count = getattr(source, "count", 0) if isinstance(source, VideoFileSource) else 0
        for entry in sorted(os.listdir(frames)):
            path = frames / entry
            if path in gone or not may_write_frame(entry, stems) or not os.path.lexists(path):
                continue
            if stems is None and count > 0 and _frame_number(entry) >= count:  # past the video's last frame
                continue
            if path.is_file() and not path.is_symlink() and has_jpeg_comment(path, FRAME_MARK):
                continue  # a run's frame (its keypoints.jsonl gone, say), no photo of the user's
            taken.append(f"frames/{entry}")
    if taken:
        shown = shortlist(taken)
        it, they = ("it", "it is") if len(taken) == 1 else ("them", "they are")
        raise UsageError(
            f"--out {out} holds {shown}, which no finished dpupose run wrote there and this run would write over: "
            f"move {it} elsewhere (or remove {it}, if {they} an unfinished run's), or choose another --out"
        )


def _has_data(path: Path) -> bool:
    """Whether something other than an empty regular file (or nothing) is at `path`."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return not (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def _cut_first_record(path: Path) -> bool:
    """Whether `path` holds only the beginning of a run's first record, cut short (a run killed as it wrote it):
    a record starts with its frame number."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return False
    return b"\n" not in data and data.startswith(b'{"frame": ')


def _frame_number(name: str) -> int:
    """The frame number in a numbered frame's name (000012.jpg, .000012.part.jpg)."""
    return int(name.lstrip(".").split(".")[0])


def _annotations(mode: str) -> list[str]:
    """What a run with --annotate `mode` (resolved: no 'auto') writes under --out besides keypoints.jsonl and
    run.json. annotated.avi: where OpenCV cannot write MP4 (VideoSink falls back to MJPG in AVI)."""
    return {"frames": ["frames"], "video": ["annotated.mp4", "annotated.avi"]}.get(mode, [])


def _written(mode: str) -> list[str]:
    """What a run with --annotate `mode` writes under --out: keypoints.jsonl, run.json, its annotations, and
    the .part names its video is written under until it reads back (kept there when it does not)."""
    videos = [n for n in _annotations(mode) if n != "frames"]
    parts = [f"{Path(n).stem}.part{Path(n).suffix}" for n in videos]
    return ["keypoints.jsonl", "run.json", *_annotations(mode), *parts]


def _annotate_mode(opts: RunOptions) -> str:
    """--annotate with 'auto' resolved: frames/ for an image folder or image (open_source reads those as
    images), the video otherwise."""
    if opts.annotate == "auto":
        return "frames" if is_image_source(opts.source) else "video"
    return opts.annotate


def _check_outputs_are_files(opts: RunOptions) -> None:
    """Refuse, before any work, an --out whose output names are taken by something this run cannot write as
    it does: a FIFO at keypoints.jsonl blocked the run for ever in its open (no reader comes), a device took
    the lines, and run.json or the video, written aside and renamed, took a FIFO's or device's place only
    once the run was over (a folder refused that rename then); a frames/ that is no folder failed the run
    once its runners were loaded, and a FIFO or device in frames/ at a frame's name was replaced by the frame
    (at its temporary name, the write blocked for ever)."""
    assert opts.out is not None
    mode = _annotate_mode(opts)
    for name in (n for n in _written(mode) if n != "frames"):
        refuse_non_file(opts.out / name, f"its {name}")
    frames = opts.out / "frames"
    # lexists: a link that leads nowhere was written through, the folder it names made (make_dirs) and the
    # frames written there, where anything but a folder at frames/ is refused (runtime.md)
    if mode == "frames" and os.path.lexists(frames) and not frames.is_dir():
        raise UsageError(
            f"{frames} is {what_is_at(frames)}, not a folder, and this run writes its annotated frames there: move it "
            "away, or choose another --out"
        )
    if mode == "frames" and frames.is_dir():
        # the stems looked up per entry: a folder of many images into frames/ of as many earlier frames
        # stays one pass over each, not one over the images for every frame
        stems = frame_stems(_image_names(opts.source)) if is_image_source(opts.source) else None
        for entry in sorted(os.listdir(frames)):
            if may_write_frame(entry, stems):
                refuse_non_file(frames / entry, "an annotated frame")


def _image_names(source: str) -> list[str]:
    """The file names an image --source (a folder or one image) may give frames/ (hidden and non-image files
    included: more than it writes, never fewer); none when it cannot be listed (the source's own error
    comes later)."""
    path = Path(source)
    try:
        return os.listdir(path) if path.is_dir() else [path.name]
    except OSError:
        return []


def _remove_earlier_record(out: Path) -> None:
    """Remove an earlier run's run.json (the record of a finished run) before this run writes anything, the
    removal flushed to disk: a run that stops before writing its own (killed, a full disk, a power cut) leaves a
    folder without run.json, an unfinished run, instead of the earlier run's record beside this run's
    keypoints.jsonl. (_check_outputs_are_files refused anything but a file there.)"""
    try:
        (out / "run.json").unlink()
    except FileNotFoundError:
        return
    sync_file(out, out)


# What a run may have left under --out besides keypoints.jsonl and run.json: the annotated video (and its .part
# name, kept where it did not read back) and frames/, whose .jpg files are the annotated frames.
EARLIER_VIDEOS = ("annotated.mp4", "annotated.avi", "annotated.part.mp4", "annotated.part.avi")


# The keys of a keypoints.jsonl line (FrameResult.to_json) and of run.json (RunSummary.to_dict) that tell a
# run's file from another program's of the same name.
RECORD_KEYS = frozenset({"frame", "source", "keypoints", "confidence", "timings_ms"})
RUN_KEYS = frozenset({"backend", "decode", "skipped_inputs", "fingerprint_check", "outputs"})


def _holds_a_run(out: Path) -> bool:
    """Whether --out holds a run's outputs: a keypoints.jsonl whose first line is a run's record (a run's first
    file), or a run's run.json. A file of either name that no run wrote (a user's own keypoints.jsonl, in a
    folder of their photos with a frames/ of their own) does not make it a run's folder: nothing in a folder
    that is no run's is removed."""
    return _starts_with(out / "keypoints.jsonl", RECORD_KEYS, line=True) or _starts_with(out / "run.json", RUN_KEYS)


def _starts_with(path: Path, keys: frozenset[str], line: bool = False) -> bool:
    """Whether `path` is a regular file holding a JSON object with `keys` (its first line's, for `line`); read up
    to 1 MB (a run's record and run.json are a few kB)."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            data = f.readline(1 << 20) if line else f.read(1 << 20)
        value = loads_json(data)
    except (OSError, ValueError):  # unreadable, not JSON (UnicodeDecodeError is a ValueError)
        return False
    return isinstance(value, dict) and keys <= value.keys()


def _earlier_annotations(out: Path, wrote: set[str] | None) -> list[Path]:
    """An earlier run's annotated video and annotated frames, which this run removes before it writes its own
    (`_remove_earlier_annotations`), so that none of them (the video when this run writes frames, the frames
    past this run's last) is taken for this run's. Only regular files at the names that run wrote them under:
    the videos' names, and in frames/ the frames its keypoints.jsonl's records name (`_earlier_frames`;
    `wrote`: what its run.json, read before that was removed, lists, None without one); anything else there (a
    user's photos and other files, links, subfolders, FIFOs) stays. A frames/ that is a link to a folder is left
    whole, with every file in the folder it points to."""
    found = [path for path in (out / name for name in EARLIER_VIDEOS) if path.is_file() and not path.is_symlink()]
    frames = out / "frames"
    if not frames.is_dir() or frames.is_symlink():  # a link to a folder: its files are not the run's to remove
        return found
    with os.scandir(frames) as entries:  # listed first: what is looked up in keypoints.jsonl is bounded by it
        present = {e.name for e in entries if e.name.endswith(".jpg") and e.is_file(follow_symlinks=False)}
    return found + [frames / name for name in sorted(_earlier_frames(out, present, wrote))]


def _remove_earlier_annotations(out: Path, earlier: list[Path]) -> None:
    """Remove the files `_earlier_annotations` found (still regular files), and frames/ when that leaves it
    empty (not empty: a user's files stay in it)."""
    for path in earlier:
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    frames = out / "frames"
    if frames.is_dir() and not frames.is_symlink():
        with contextlib.suppress(OSError):
            frames.rmdir()


# The longest keypoints.jsonl line read as a record (a run's is about 1 kB); a longer one is passed over.
RECORD_LINE_LIMIT = 1 << 20


def _earlier_frames(out: Path, present: set[str], wrote: set[str] | None) -> set[str]:
    """Which of `present` (the .jpg files in frames/) the earlier run in `out` may have written: those its
    keypoints.jsonl's records name (sinks.record_frame_names: an image's name, a frame number, and the
    .part.jpg name a run killed while writing the frame leaves; the record is written before its frame). Read
    in one pass, line by line, keeping only names of `present`: a camera's run of hours has 100,000s of lines.
    A line that is not a run's record is passed over: the last one a killed run left half written (its frame
    was not written yet), and anything another program added.

    Nothing when the earlier run's run.json said it wrote no frames/ (`wrote`, what it lists: --annotate none
    or video, or no frame written): every file there is then someone else's, whatever its name. Nothing either
    without keypoints.jsonl (only run.json left, the keypoints removed): which frames that run wrote is said
    nowhere else, and a frames/ there may be a user's own, so nothing in it is taken for that run's. And without
    the run's run.json (`wrote` None: a run that did not finish, killed or stopped by a full disk) only the
    hidden .part.jpg names and the frames that bear the run's FRAME_MARK: its records name an image or frame
    number whatever it wrote, and those of an --annotate none run of a user's photos (--source OUT/frames) name
    the photos themselves, which bear no such mark."""
    if not present or (wrote is not None and "frames" not in wrote):
        return set()
    finished = wrote is not None
    found: set[str] = set()
    try:
        with open(out / "keypoints.jsonl", "rb") as f:
            for line in _lines(f, RECORD_LINE_LIMIT):
                try:
                    record = loads_json(line)
                except ValueError:  # half written (a killed run's last line), or not JSON at all
                    continue
                if not isinstance(record, dict) or not record.keys() >= RECORD_KEYS:
                    continue
                frame, source = record["frame"], record["source"]
                if type(frame) is not int or frame < 0 or not isinstance(source, str):
                    continue
                found.update(
                    name
                    for name in record_frame_names(frame, source)
                    if name in present
                    and (finished or name.startswith(".") or has_jpeg_comment(out / "frames" / name, FRAME_MARK))
                )
    except OSError:  # gone or unreadable: what was read so far (nothing, if it is not there)
        pass
    return found


def _run_outputs(path: Path) -> set[str] | None:
    """The names of the outputs a run's run.json at `path` lists (their last part: frames, annotated.mp4), or
    None when there is no run's run.json there (a run that did not finish, or another program's file)."""
    if not _starts_with(path, RUN_KEYS):
        return None
    try:
        outputs = loads_json(path.read_bytes())["outputs"]
    except (OSError, ValueError):
        return None
    if not isinstance(outputs, list) or not all(isinstance(p, str) for p in outputs):
        return None
    return {Path(p).name for p in outputs}


def _lines(f: BinaryIO, limit: int) -> Iterator[bytes]:
    """The lines of the binary file `f`, each at most `limit` bytes: a longer one is skipped whole (read
    `limit` bytes at a time, never held)."""
    while line := f.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(limit)
            continue
        yield line


def _sinks(opts: RunOptions, source: FrameSource, input_size: int) -> list[Sink]:
    sinks: list[Sink] = []
    if opts.out is not None:
        mode = _annotate_mode(opts)
        # Before any sink opens (and empties) a file.
        # What an earlier run left that this run removes: found first, so that --source is refused only where
        # it is among those (or it is what this run writes), and removed as found.
        earlier = _holds_a_run(opts.out)
        wrote = _run_outputs(opts.out / "run.json") if earlier else None  # read before it is removed
        removed = _earlier_annotations(opts.out, wrote) if earlier else []
        _check_source_is_not_an_output(opts, _written(mode), removed)
        _check_nothing_of_yours_is_replaced(opts, mode, source, removed)
        if earlier:  # first: a run stopped while it removes them leaves run.json to say what is left
            _remove_earlier_annotations(opts.out, removed)
        _remove_earlier_record(opts.out)  # then: from here on, the folder holds a run that did not finish
        try:
            sinks.append(JsonLinesSink(opts.out / "keypoints.jsonl"))
            if mode == "frames":
                if isinstance(source, ImageFolderSource):  # its listing says which names two images ask for
                    shared = shared_stems([p.name for p in source.files])
                    sinks.append(FolderSink(opts.out / "frames", by_frame_number=False, shared=shared))
                else:
                    sinks.append(FolderSink(opts.out / "frames", by_frame_number=True))
            elif mode == "video":
                # a first frame too small to size the video (a 1-pixel image) gives it the model's input size
                square = (input_size, input_size)
                sinks.append(VideoSink(opts.out / "annotated.mp4", source.fps, source.live, small_frame_size=square))
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
    elif opts.annotate in ("frames", "video"):
        raise UsageError(f"--annotate {opts.annotate} needs --out DIR")
    if opts.show:
        sinks.append(DisplaySink())
    return sinks


def run(opts: RunOptions, progress: Callable[[str], None] | None = None) -> RunSummary:
    """Run a plan over a source. Raises after finalizing outputs if the source or a runner fails."""
    if opts.max_frames is not None and opts.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if opts.threads is not None and opts.threads < 1:
        raise UsageError("--threads must be at least 1")
    if opts.dpu_jobs < 1:
        raise UsageError("--dpu-jobs must be at least 1")
    if opts.annotate not in ANNOTATE:
        raise UsageError(f"--annotate must be one of {', '.join(ANNOTATE)}")
    plan = load_plan(opts.plan)
    if opts.out is not None:
        # By any name (fsio.within): a link to the plan folder (as --plan, or in --out's path), a bind mount of it.
        out = Path(os.path.realpath(opts.out))
        if within(opts.out, plan.root):
            raise UsageError(
                f"--out {opts.out} is inside the plan folder {plan.root}: `sdcard stage` and `deploy` would copy "
                "this run's outputs with the plan; choose another --out"
            )
        src = Path(opts.source)
        # By device and inode too (same_file): a bind mount of the folder elsewhere is a name resolve() does not tie
        # to it.
        if not opts.source.startswith("camera:") and src.is_dir() and (src.resolve() == out or same_file(src, out)):
            raise UsageError(
                f"--out {opts.out} is the --source image folder: keypoints.jsonl, run.json and the annotated frames "
                "would go among its images, and a later run of the folder would find them there; choose another --out"
            )
        _check_outputs_are_files(opts)
    check_decode(plan, opts.decode, opts.min_confidence)  # before any runner (or the DPU) is opened
    backend = resolve_backend(opts.backend)
    uncompiled = [sg.name for sg in plan.subgraphs if sg.is_dpu and sg.xmodel is None]
    if backend == "vart" and uncompiled and not (opts.backend or os.environ.get(BACKEND_VAR)):
        # Chosen, not asked for: VART cannot run a DPU subgraph without its .xmodel (the shipped plan's), so the
        # board runs it on the CPU, as the notebook chooses (runtime.notebook.default_backend).
        log.warning(
            "the plan records no compiled .xmodel for %s, which VART needs: running it with --backend cpu (ONNX "
            "Runtime on the CPU); compile and split it with --xmodel to run it on the DPU (docs/quantization.md)",
            shortlist(uncompiled),
        )
        backend = "cpu"
    pipelined = opts.pipeline or opts.drop_late
    with ExitStack() as stack:
        factory = RunnerFactory(plan, backend, opts.threads, opts.overlay, opts.exact)
        guard = factory.guard.summary() if factory.guard is not None else None
        if guard:
            log.info("%s", guard)
        executor = SplitExecutor(plan, factory.create_all(), opts.decode)
        stack.callback(executor.close)
        source = open_source(
            opts.source,
            reconnect_attempts=opts.camera_retries,
            reconnect_delay_s=opts.camera_retry_delay_s,
            # --drop-late reads a camera continuously (and drops what the pipeline cannot take): the driver's
            # queue never fills. Otherwise a frame is read when the run can take it: the newest, not a queued one.
            buffer_frames=None if opts.drop_late else 1,
        )
        stack.callback(source.close)
        if opts.drop_late and not source.live:
            log.warning("--drop-late with a file source drops every frame the pipeline cannot take at once")
        frames = itertools.islice(iter(source), opts.max_frames)
        if pipelined:
            pipe = Pipeline(executor, factory.create, opts.dpu_jobs, drop_late=opts.drop_late)
            stack.callback(pipe.close)
            stats = pipe.new_stats()
            results: Iterator[FrameResult] = pipe.run(frames)
        else:
            pipe = None
            stats = RunStats.for_stages(executor.stage_names)
            results = (executor.process(f) for f in frames)
        if opts.out is not None:
            # Before a sink empties a file: two runs into one folder would interleave keypoints.jsonl. A run
            # refused from here on (_sinks' checks) leaves --out as it found it: no lock file, no folder it made.
            stack.enter_context(lock_output_folder(opts.out, "dpupose run"))
        sinks = _sinks(opts, source, plan.input_size)
        summary = RunSummary(backend, stats, guard=guard, decode=opts.decode)
        try:
            _consume(opts, stack.enter_context(closing(results)), sinks, stats, progress, backend)
        except KeyboardInterrupt as exc:
            summary.interrupted = True
            summary.terminated = isinstance(exc, Terminated)
        except DpuposeError as exc:
            _finish(summary, sinks, source, pipe, opts)
            raise type(exc)(f"{exc}; {_kept(summary)}") from None
        except BaseException:
            _finish(summary, sinks, source, pipe, opts)
            raise
        failed = _finish(summary, sinks, source, pipe, opts)
        if failed is not None and not summary.interrupted:
            raise failed
        return summary


def _consume(
    opts: RunOptions,
    results: Iterator[FrameResult],
    sinks: list[Sink],
    stats: RunStats,
    progress: Callable[[str], None] | None,
    backend: str,
) -> None:
    wants_image = any(s.wants_image for s in sinks)
    # A frame counts in run.json's `frames` once its keypoints.jsonl line is written (with no --out, once it
    # is processed): Ctrl-C while a large frame is drawn counted it with no line in the file.
    record = next((s for s in sinks if isinstance(s, JsonLinesSink)), None)
    start = time.perf_counter()
    meter = FpsMeter(clock=time.perf_counter, start=start)
    last_report = start
    try:
        for result in results:
            now = time.perf_counter()
            fps = meter.tick(now)
            if record is None:
                stats.add(result)
            image = annotate(result, fps, opts.min_confidence) if wants_image else None
            if image is not None:  # as the notebook does: an emulator's FPS is not taken for the board's
                draw_label(image, f"backend: {backend}", row=1)
            for sink in sinks:
                sink.write(result, image)
                if sink is record:
                    stats.add(result)
            result.image = None
            if progress is not None and now - last_report >= opts.report_every_s:
                progress(f"frame {result.index}: {fps:.1f} FPS")
                last_report = now
            if any(s.quit_requested for s in sinks):
                break
    finally:
        stats.wall_seconds = time.perf_counter() - start
        stats.recent_fps = meter.fps if stats.frames else None


def _finish(
    summary: RunSummary, sinks: list[Sink], source: FrameSource, pipe: Pipeline | None, opts: RunOptions
) -> Exception | None:
    """Finalize every sink and write run.json; returns the first sink's error (logged; its output is not
    listed as written), for a run that otherwise ended well to fail with."""
    failed: Exception | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:  # one broken sink must not lose the others' output
            log.error("could not finalize %s: %s", type(sink).__name__, exc)
            failed = failed or exc
            continue
        for attr in ("path", "folder"):
            if hasattr(sink, attr) and sink.wrote:  # not annotated.mp4 when no frame came (there is none)
                summary.outputs.append(getattr(sink, attr))
    summary.skipped = source.skipped
    summary.peak_rss_mb = peak_rss_mb()
    if pipe is not None:
        summary.stats.dropped = pipe.dropped
    if opts.out is not None:
        path = opts.out / "run.json"
        write_json(path, summary.to_dict(opts.out))
        summary.outputs.append(path)
    return failed


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MB (10**6 bytes) so far: what the run needed on the machine it
    ran on, models, runners and buffers included. None where the platform does not say (no `resource`)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return round(peak / (1e6 if sys.platform == "darwin" else 1e3), 1)


def _kept(summary: RunSummary) -> str:
    where = ", ".join(str(p) for p in summary.outputs) if summary.outputs else "nothing was written (no --out)"
    return f"{summary.stats.frames} frames were processed before that; outputs: {where}"
