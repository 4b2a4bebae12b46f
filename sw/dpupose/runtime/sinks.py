"""Where results go: JSON lines, annotated frames (folder or video file), a window; live FPS (board-safe).

Everything a run has written survives its end, however it ends (Ctrl-C, a camera unplugged, an error):
JSON lines are written whole after every frame (a line the disk had no room for is taken back), annotated
images are written atomically one by one, and the video is finalized by close() and only then renamed from
`NAME.part` to its final name, once it reads back (OpenCV's writer reports no error: on a full disk it
leaves a video without its index, which stays `NAME.part`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Collection
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from dpupose.data.transforms import resize
from dpupose.errors import DeviceError, UsageError
from dpupose.fsio import free_space, json_text, make_dirs, open_new, special_kind
from dpupose.runtime.draw import draw_label, draw_skeleton
from dpupose.runtime.frames import FPS_HORIZON_S, FPS_WINDOW, FrameResult
from dpupose.runtime.imagefile import opencv_path, write_jpeg
from dpupose.runtime.sources import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
# A first frame narrower or lower than this does not size the video: OpenCV's MP4 writer refuses a side of one
# pixel (with an error dump), and a video a few pixels across shows nothing of the later frames scaled to it.
MIN_VIDEO_SIDE = 16


class Sink:
    """Receives each result (and its annotated frame, when one was drawn)."""

    wants_image = False  # needs the annotated frame
    quit_requested = False  # a window's user asked to stop
    wrote = True  # its output (path or folder) is there to be listed in run.json

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and finalize."""


class JsonLinesSink(Sink):
    """One JSON object per frame: frame, source, keypoints (frame pixels), confidence, timings_ms."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        make_dirs(self.path.parent)
        # Unbuffered: each line goes to the file as it is written, and a failed write leaves nothing queued. A new
        # file (open_new): an earlier run's, emptied in place, was emptied under its other names too (a hard link).
        self._f: IO[bytes] | None = open_new(self.path)
        self._size = 0
        self.count = 0

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        assert self._f is not None
        line = memoryview((json_text(result.to_json()) + "\n").encode("utf-8"))
        try:
            while line:
                line = line[self._f.write(line) :]
        except OSError as exc:  # a full disk mid-line: the file keeps whole lines only, and says which file
            with contextlib.suppress(OSError):
                self._f.truncate(self._size)
            raise type(exc)(exc.errno, exc.strerror, str(self.path)) from None
        self._size = self._f.tell()
        self.count += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def numbered_stem(index: int) -> str:
    """The stem FolderSink gives a video's or camera's frame `index` (its frame number): 000012."""
    return f"{index:06d}"


def image_stems(name: str) -> tuple[str, str]:
    """The stems FolderSink may give the frame of the image file `name`: its stem, or its whole name where an
    earlier image of the run had that stem (a.png beside a.jpg: a.png.jpg)."""
    return Path(name).stem, name


def frame_file_names(stem: str) -> tuple[str, str]:
    """The names FolderSink writes a frame of this stem under: STEM.jpg, and .STEM.part.jpg while it is written
    (left behind by a run killed then)."""
    return f"{stem}.jpg", f".{stem}.part.jpg"


def record_frame_names(frame: int, source: str) -> tuple[str, ...]:
    """The names in frames/ a run may have written the frame of its keypoints.jsonl record (`frame`, `source`)
    under: an image's stems when `source` is an image's name (an image source's records name its files, and
    open_source reads a name with an image extension as an image, never a video), else the frame number (a
    video's name or camera:N). A run with its frames in a video, or none, wrote none of them."""
    stems = image_stems(source) if Path(source).suffix.lower() in IMAGE_EXTENSIONS else (numbered_stem(frame),)
    return tuple(name for stem in stems for name in frame_file_names(stem))


def frame_stems(image_names: Collection[str]) -> frozenset[str]:
    """The stems FolderSink may give the frames of a source of these image file names (in any order, skipped
    ones too): each name's stem, and the whole name (two sources of one stem, a.jpg and a.png, keep theirs).
    Made once for a run: `may_write_frame` then looks each of frames/' entries up in it."""
    return frozenset(stem for n in image_names for stem in image_stems(n))


def shared_stems(image_names: Collection[str]) -> frozenset[str]:
    """The names FolderSink must remember having written for a source of these image file names: a stem
    two of them have (a.jpg and a.png: the second is written as a.png.jpg), and a whole name that is another
    one's stem (a.png beside a.png.jpg, whose frame is then a.png.jpg.jpg). No other image can ask for the name
    any other stem gives, so nothing is kept for it: what the sink holds is bounded by the source's listing
    (nothing, for a folder without such names) instead of growing by a name every frame."""
    stems = collections.Counter(Path(n).stem for n in image_names)
    return frozenset(s for s, k in stems.items() if k > 1) | frozenset(n for n in image_names if n in stems)


def may_write_frame(name: str, stems: AbstractSet[str] | None) -> bool:
    """Whether FolderSink may write `name` (STEM.jpg, or .STEM.part.jpg while it is written) for an image
    source of these `frame_stems`, or for a video's or camera's numbered frames when `stems` is None."""
    if not name.endswith(".jpg"):
        return False
    candidates = {name[: -len(".jpg")]}
    if name.startswith(".") and name.endswith(".part.jpg"):
        candidates.add(name[1 : -len(".part.jpg")])
    if stems is None:
        return any(stem.isascii() and stem.isdigit() and len(stem) >= 6 for stem in candidates)  # numbered_stem's
    return not stems.isdisjoint(candidates)


def refuse_non_file(path: Path, what: str) -> None:
    """UsageError when something that is no regular file (a FIFO, a device, a folder) is at `path`, where the
    run writes `what`: written aside and renamed over it, the file would take its place (a FIFO at the
    temporary name blocks the write for ever)."""
    if os.path.exists(path) and not path.is_file():
        raise UsageError(
            f"{path} is {special_kind(path)}, not a file, and this run writes {what} there: move it away, or choose "
            "another --out"
        )


# In a comment segment of each annotated frame: what tells a frame of a run that did not finish (no run.json says
# it wrote frames) from a user's photo of its name, so that the next run into the folder replaces it.
FRAME_MARK = b"Written by dpupose run"


class FolderSink(Sink):
    """Annotated frames as JPEG files: the source image's name, or the frame number for videos/cameras.
    Two sources with one stem (a.jpg, a.png) keep their whole names (a.jpg.jpg is not made: a.png.jpg).

    `shared`: the names it must remember having written, for a source whose image names are known
    (`shared_stems` of them); None remembers every one (a set that grows by a name a frame)."""

    wants_image = True

    def __init__(self, folder: str | Path, by_frame_number: bool, shared: AbstractSet[str] | None = None) -> None:
        self.folder = Path(folder)
        self._made = not self.folder.exists()  # removed again by close() if no frame came
        make_dirs(self.folder)
        self.by_frame_number = by_frame_number
        self.count = 0
        self._shared = shared
        # names given to an image folder's files that a later file may ask for (a frame number is never repeated)
        self._written: set[str] = set()

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if annotated is None:
            return
        if self.by_frame_number:  # a camera's or video's: not kept, a camera's run goes on for hours
            stem = numbered_stem(result.index)
        else:
            stem, whole = image_stems(result.source)
            if stem in self._written:  # another source of this run has the same stem
                stem = whole
            if self._shared is None or stem in self._shared:
                self._written.add(stem)
        path, tmp = (self.folder / name for name in frame_file_names(stem))
        for taken in (path, tmp):  # refused before the run (app._check_outputs_are_files) unless made since
            refuse_non_file(taken, "an annotated frame")
        try:
            if not write_jpeg(tmp, annotated, comment=FRAME_MARK):
                raise DeviceError(f"cannot encode the annotated frame for {path} as JPEG")
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: no part file stays, and the error names the frame's file
            tmp.unlink(missing_ok=True)
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.count += 1

    @property
    def wrote(self) -> bool:  # type: ignore[override]
        """Whether a frame was written: a run whose every input was skipped writes none."""
        return self.count > 0

    def close(self) -> None:
        if self._made and not self.count:  # the empty folder this sink made (rmdir: empty ones only)
            with contextlib.suppress(OSError):
                self.folder.rmdir()


class VideoSink(Sink):
    """Annotated frames into a video file (mp4v for .mp4, MJPG for .avi/.mkv), sized by the first frame; by
    `small_frame_size` (w, h) instead where the first frame has a side under MIN_VIDEO_SIDE (`dpupose run`
    gives the model's input size), which the frames are then scaled to.

    A file source's frames are written one each, at the source's rate, so the video keeps its timing. A live
    source (`realtime`) delivers frames at its own rate while the run processes fewer: each annotated frame
    is written as many times as video frames are due at the video's rate since the previous one was written
    (by `clock`, from the first frame), so the video plays back in real time instead of as fast as the
    camera's rate makes it; a frame that arrives less than half a video frame after the previous one is
    not written. A frame thus fills the time before it arrived, not after: no frame is held back until
    the next one comes, and the last is written once.
    """

    wants_image = True

    def __init__(
        self,
        path: str | Path,
        fps: float | None = None,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        small_frame_size: tuple[int, int] = (MIN_VIDEO_SIDE, MIN_VIDEO_SIDE),
    ) -> None:
        self.path = Path(path)
        if self.path.is_symlink():  # renamed over, the link became a file: the file it points to is replaced
            self.path = Path(os.path.realpath(self.path))
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise ValueError(f"video output must end in one of {', '.join(VIDEO_CODECS)}")
        make_dirs(self.path.parent)
        self.part = self.path.with_name(self.path.stem + ".part" + self.path.suffix)
        self.fps = fps if fps and fps > 0 else 15.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.realtime = realtime
        self._clock = clock
        self._start: float | None = None
        self.count = 0  # frames in the file (a repeated frame counts each time)
        self._resized = False  # a frame of another size than the first has come
        self.small_frame_size = (max(small_frame_size[0], MIN_VIDEO_SIDE), max(small_frame_size[1], MIN_VIDEO_SIDE))

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if annotated is None:
            return
        copies = 1
        if self.realtime:
            now = self._clock()
            if self._start is None:
                self._start = now
            copies = round((now - self._start) * self.fps) + 1 - self.count  # frames due once this one is in
            if copies < 1:
                return
        h, w = annotated.shape[:2]
        if self._writer is None:
            size = (w, h)
            if min(w, h) < MIN_VIDEO_SIDE:
                size = self.small_frame_size
                log.warning(
                    "%s: the first frame (%s) is %dx%d, too small to size the video by: the video is %dx%d (the "
                    "model's input size), each frame scaled to it; keypoints.jsonl keeps each frame's own pixels",
                    self.path.name,
                    result.source,
                    w,
                    h,
                    *size,
                )
                self._resized = True  # said: the scaling of later frames of other sizes is not said again
            self._writer = self._open(*size)
            self._size = size
        if (w, h) != self._size:
            if not self._resized:  # once: a source whose frames change size changes it for every frame after
                log.warning(
                    "%s: frame %d is %dx%d, not %dx%d as the first: the video scales it (and each other frame "
                    "of another size) to %dx%d; keypoints.jsonl keeps each frame's own pixels",
                    self.path.name,
                    result.index,
                    w,
                    h,
                    *self._size,
                    *self._size,
                )
                self._resized = True
            annotated = resize(annotated, self._size, cv2.INTER_AREA)
        for _ in range(copies):
            self._writer.write(annotated)
        self.count += copies

    @property
    def wrote(self) -> bool:  # type: ignore[override]
        """Whether a video was made: without a frame none is (a video with no frames, a run stopped first)."""
        return self.count > 0

    def _open(self, w: int, h: int) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
        writer = cv2.VideoWriter(opencv_path(self.part), fourcc, self.fps, (w, h))
        if writer.isOpened():
            return writer
        if self.path.suffix.lower() != ".avi":  # MJPG in AVI is built into every OpenCV
            log.warning(
                "this OpenCV cannot write %s (MPEG-4, mp4v, %dx%d at %g FPS: a build without that encoder); writing "
                "%s (MJPG) instead",
                self.path.name,
                w,
                h,
                self.fps,
                self.path.stem + ".avi",
            )
            self.part.unlink(missing_ok=True)
            self.path = self.path.with_suffix(".avi")
            self.part = self.path.with_name(self.path.stem + ".part.avi")
            writer = cv2.VideoWriter(opencv_path(self.part), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
            if writer.isOpened():
                return writer
        raise DeviceError(f"OpenCV cannot write the video {self.path} (disk full or not writable?)")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if not _reads_back(self.part):
                raise DeviceError(
                    f"the annotated video {self.path} could not be written whole (is the disk full? "
                    f"{free_space(self.part)} free there): what was written is kept as {self.part.name}, "
                    "which may not play"
                )
            os.replace(self.part, self.path)


def _reads_back(path: Path) -> bool:
    """Whether OpenCV opens the video at `path` and finds frames in it: OpenCV's writer reports no write
    error, and a full disk leaves an MP4 without its index (which does not open) or an AVI whose index
    counts no frame. A backend that cannot count frames (GStreamer answers -1 or 0) is asked for one."""
    capture = cv2.VideoCapture(opencv_path(path))
    try:
        return capture.isOpened() and (capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0 or capture.read()[0])
    finally:
        capture.release()


def display_available() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class DisplaySink(Sink):
    """Shows annotated frames in a window; q or Esc asks the run to stop."""

    wants_image = True

    def __init__(self, title: str = "dpupose") -> None:
        self.title = title
        self.enabled = display_available()
        if not self.enabled:
            log.warning("--show: no display (DISPLAY is not set); frames are not shown")
            return
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            log.warning("--show: this OpenCV build cannot open windows (%s); frames are not shown", exc)
            self.enabled = False

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if not self.enabled or annotated is None:
            return
        cv2.imshow(self.title, annotated)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit_requested = True

    def close(self) -> None:
        if self.enabled:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)


class FpsMeter:
    """Frames per second over the last `window` frames, and until there are that many, over every frame since
    the meter started: two frames that a pipeline hands on together (two DPU jobs) are not a rate of their own
    (it read 30000 FPS at the second frame of a 2 FPS run). Frames more than `horizon_s` seconds old leave the
    window before that (all but the newest of them, so that it still spans `horizon_s`): after the source
    stalls (a camera reconnecting) the figure is the rate since, within `horizon_s`, where at 2 FPS it kept
    the stall in for 30 frames (15 s)."""

    def __init__(
        self,
        window: int = FPS_WINDOW,
        clock=time.perf_counter,
        horizon_s: float = FPS_HORIZON_S,
        start: float | None = None,
    ) -> None:
        """`start`: when the meter starts, by `clock` (default: now)."""
        self._times: collections.deque[float] = collections.deque(
            [clock() if start is None else start], maxlen=window + 1
        )
        self._clock = clock
        self.horizon_s = horizon_s

    def tick(self, now: float | None = None) -> float:
        """A frame came, `now` by the meter's clock (default: read it); the FPS."""
        now = self._clock() if now is None else now
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[1] >= self.horizon_s:
            self._times.popleft()
        return self.fps

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def annotate(result: FrameResult, fps: float | None = None, min_confidence: float = 0.0) -> np.ndarray:
    """A copy of the frame with the skeleton and, if given, the FPS drawn on it."""
    assert result.image is not None
    frame = result.image.copy()
    confidence = None if np.isnan(result.confidence).any() else result.confidence
    draw_skeleton(frame, result.keypoints, confidence, min_confidence)
    if fps is not None:
        draw_label(frame, f"{fps:.1f} FPS")
    return frame
