"""Frame sources: a folder of images (or one image), a video file, or a camera (board-safe: OpenCV).

`open_source(spec)`: "camera" or "camera:N" -> CameraSource(N); a folder or image file ->
ImageFolderSource; any other file -> VideoFileSource.

Bad input never stops a run that can go on: a non-image file in a folder, an image that does not decode
and a video frame that does not decode are skipped with a warning (and counted in `skipped`). A camera
that stops delivering frames (unplugged) is reopened a few times; if it does not come back the source
raises DeviceError after the frames read so far, which the caller has already handled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dpupose.errors import DataError, DeviceError, UsageError, shortlist
from dpupose.fsio import dangling_link, not_a_file, special_kind
from dpupose.runtime.frames import Frame
from dpupose.runtime.imagefile import opencv_path, read_bgr

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
CaptureFactory = Callable[..., Any]  # cv2.VideoCapture or a stand-in with the same methods
# Cameras open through V4L2 on Linux: with CAP_ANY a build with GStreamer (Ubuntu's, the board's) tries GStreamer
# first for a camera number, and GStreamer ignores most capture properties (buffer count, pixel format).
CAMERA_API = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


class FrameSource:
    """Iterate for Frames; close() releases the device or file. A context manager."""

    name = "source"
    live = False  # a camera: frames keep coming whether or not they are taken
    fps: float | None = None

    def __init__(self) -> None:
        self.skipped = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or device."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _camera_name(path: Path) -> str | None:
    """The first name "video..." along `path`'s chain of links, itself first (/dev/v4l/by-id/...-index0 ->
    ../../video0 gives "video0"); None if there is none."""
    for _ in range(40):  # the kernel's own limit on nested links
        if path.name.startswith("video"):
            return path.name
        if not path.is_symlink():
            return None
        path = path.parent / os.readlink(path)
    return None


def _pattern(spec: str) -> str:
    """For a --source that is not there and holds a pattern's characters (`--source 'images/*.jpg'`, quoted so
    the shell left it), that dpupose takes no pattern."""
    if not any(c in spec for c in "*?["):
        return ""
    return " (dpupose expands no pattern such as *.jpg: give the folder, and every image in it runs)"


OPTION = "--source"  # what the messages call the source: the notebook's is its SOURCE variable


def _give(option: str, what: str) -> str:
    """'pass WHAT as --source' on the command line; 'set SOURCE to WHAT' for a variable (the notebook's)."""
    return f"pass {what} as {option}" if option.startswith("-") else f"set {option} to {what}"


def _another(option: str) -> str:
    """'pass another --source'; 'set SOURCE to another source' for a variable."""
    return f"pass another {option}" if option.startswith("-") else f"set {option} to another source"


def _setting(option: str, value: str) -> str:
    """How the user gives `value`: '--source camera:2', or 'SOURCE = "camera:2"'."""
    return f"{option} {value}" if option.startswith("-") else f'{option} = "{value}"'


def no_frame_message(spec: str, skipped: int, option: str = OPTION) -> str:
    """What `dpupose run` and the notebook say of a source that gave no frame: `skipped` inputs that did not
    decode, or a video with none (or none that decodes)."""
    if skipped:
        return (
            f"none of the {skipped} input(s) of {spec} could be decoded; check that they are images or a video "
            "OpenCV can read"
        )
    # a video that holds no frame (or whose length OpenCV does not know, and none decodes)
    return (
        f"{spec} gave no frame: a video with no frames, or none that OpenCV can decode; check that it plays, or "
        f"{_another(option)}"
    )


def _not_a_file(path: Path, option: str = OPTION) -> str:
    """What is wrong with a --source path that is not a folder or a regular file, and what to pass instead."""
    if not path.exists():
        # not_a_file: a link that leads nowhere is named so (dangling_link), else 'does not exist'
        what = not_a_file(path, "does not exist") + _pattern(str(path))
        return f"{what}: pass an image folder, an image, a video file or camera:N"
    camera = _camera_name(path) if path.is_char_device() else None
    if camera is not None:  # /dev/videoN (or a link to it, /dev/v4l/by-id/...), which OpenCV opens as camera N
        number = camera[5:]
        source = f"camera:{number if number.isdigit() else 'N'}"
        return f"is a camera device: give {source} as the source for it ({_setting(option, source)})"
    # what it is, as every other input names it (fsio.special_kind), not a guess ('a pipe or a device?')
    return f"is {special_kind(path)}: pass an image folder, an image, a video file or camera:N"


def _bgr8(image: np.ndarray, where: str) -> np.ndarray:
    """A video's or camera's frame as 8-bit BGR (H, W, 3), what the run takes: a grey frame, (H, W) or
    (H, W, 1), or a BGRA one (as some GStreamer pipelines and cameras deliver) is converted; any other
    form stops the run with DataError naming it (letterboxing it raised a numpy broadcasting error)."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 4))):
        code = cv2.COLOR_BGRA2BGR if image.ndim == 3 and image.shape[2] == 4 else cv2.COLOR_GRAY2BGR
        return cv2.cvtColor(image, code)
    raise DataError(
        f"{where} is {image.dtype} of shape {tuple(image.shape)}, not an 8-bit colour or grey image, which is what "
        "dpupose run takes: convert the video to 8-bit colour (or set the camera to such a format)"
    )


class ImageFolderSource(FrameSource):
    """Images of a folder in sorted name order (or a single image file)."""

    def __init__(self, path: str | Path, option: str = OPTION) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        subfolders: list[str] = []
        if self.path.is_dir():
            entries = sorted(self.path.iterdir())
            # A link that leads nowhere is listed, to be skipped with a warning, not passed over in silence.
            self.files = [p for p in entries if p.is_file() or (p.is_symlink() and not p.exists())]
            # Hidden ones (.ipynb_checkpoints, .git) are no one's images.
            subfolders = [p.name for p in entries if p.is_dir() and not p.name.startswith(".")]
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise UsageError(f"image source {self.path} {_not_a_file(self.path, option)}")
        # Subfolders are not read (their images would need names of their own in frames/): said, not passed over.
        names = shortlist(subfolders)
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in self.files):
            if subfolders:
                raise DataError(
                    f"{self.path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) itself, and subfolders are "
                    f"not read: {_give(option, f'one of them ({names})')}"
                )
            raise DataError(
                f"{self.path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); pass a folder of images, "
                "a video file or camera:N"
            )
        if subfolders:
            pass_one = _give(option, "one")
            log.warning("%s: not reading its subfolders (%s); %s for its images", self.path, names, pass_one)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for p in self.files:
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                log.warning("skipping %s: not an image", p)  # not an input: not counted as skipped
                continue
            if p.is_symlink() and not p.exists():
                log.warning("skipping %s: %s", p, dangling_link(p))
                self.skipped += 1
                continue
            try:
                if p.stat().st_size == 0:
                    log.warning("skipping %s: the file is empty (0 bytes)", p)
                    self.skipped += 1
                    continue
                image = read_bgr(p)
            except OSError as exc:
                log.warning("skipping %s: cannot read it (%s)", p, exc.strerror or exc)
                self.skipped += 1
                continue
            except DataError as exc:  # OpenCV refuses it (too large): the message names the file
                log.warning("skipping %s", exc)
                self.skipped += 1
                continue
            if image is None:
                log.warning("skipping %s: cannot decode the image (corrupt or truncated?)", p)
                self.skipped += 1
                continue
            yield Frame(index, image, p.name)
            index += 1


class VideoFileSource(FrameSource):
    """Frames of a video file; a frame that does not decode is skipped with a warning."""

    def __init__(
        self,
        path: str | Path,
        open_capture: CaptureFactory | None = None,
        max_bad_run: int = 25,
        option: str = OPTION,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise UsageError(f"video source {self.path} {_not_a_file(self.path, option)}")
        self.cap = (open_capture or cv2.VideoCapture)(opencv_path(self.path))
        if not self.cap.isOpened():
            raise DataError(
                f"cannot open video {self.path}: not a video OpenCV can decode, or one cut short (an MP4 or MOV "
                f"recording stopped before its end has no index and does not open); check that it plays, or "
                f"{_another(option)}"
            )
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # 0: unknown
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else None
        self.max_bad_run = max_bad_run

    def __iter__(self) -> Iterator[Frame]:
        pos, bad = 0, []  # bad: positions of undecodable frames not reported yet
        while self.count <= 0 or pos < self.count:
            ok, image = self.cap.read()
            if ok and image is not None:
                if bad:
                    log.warning("%s: frame(s) %s could not be decoded; skipped", self.path.name, _ranges(bad))
                    self.skipped += len(bad)
                    bad = []
                yield Frame(pos, _bgr8(image, f"{self.path.name}: frame {pos}"), self.path.name)
            elif self.count <= 0:
                return  # length unknown: a failed read is the end of the stream
            else:
                bad.append(pos)
                if len(bad) >= self.max_bad_run:
                    break
            pos += 1
        if bad:
            self.skipped += len(bad)
            if len(bad) >= self.max_bad_run:
                log.warning(
                    "%s: %d frames in a row from frame %d could not be decoded (a file cut short, or corrupt from "
                    "there?); stopping (the file announces %d)",
                    self.path.name,
                    len(bad),
                    bad[0],
                    self.count,
                )
            else:
                log.warning(
                    "%s: the last frame(s) %s of %d could not be decoded (a file cut short?)",
                    self.path.name,
                    _ranges(bad),
                    self.count,
                )

    def close(self) -> None:
        self.cap.release()


def _ranges(positions: list[int]) -> str:
    return f"{positions[0]}" if len(positions) == 1 else f"{positions[0]}-{positions[-1]}"


class CameraSource(FrameSource):
    """A camera through cv2.VideoCapture(N, CAMERA_API); reopened after read failures, DeviceError if it stays away.

    `buffer_frames` (default 1) asks the driver to hold that many captured frames (CAP_PROP_BUFFERSIZE; a
    driver may keep more, and a backend without the property ignores it). A reader that takes a frame only
    when it has finished the previous one (a run without --drop-late, the notebook) would otherwise get the
    oldest of the driver's queue (V4L2's default is 4), a lag of several frames behind the scene at a few
    FPS. None leaves the driver's queue as it is: for a reader that takes frames as fast as they come."""

    live = True

    def __init__(
        self,
        index: int = 0,
        open_capture: CaptureFactory | None = None,
        reconnect_attempts: int = 5,
        reconnect_delay_s: float = 1.0,
        sleep: Callable[[float], None] | None = None,
        buffer_frames: int | None = 1,
    ) -> None:
        super().__init__()
        self.index = index
        self.name = f"camera:{index}"
        self._open_capture = open_capture or cv2.VideoCapture
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay_s = reconnect_delay_s
        self._sleep = sleep or time.sleep
        self._closed = False
        self._lock = threading.Lock()  # a pipelined run reads in its source thread and closes from the main one
        self._reading = False
        self.buffer_frames = buffer_frames
        self.cap = self._open()
        if not self.cap.isOpened():
            raise DeviceError(
                f"cannot open camera {index}: check that it is plugged in (ls /dev/video*) and not in use by "
                "another program, or pick another with camera:N"
            )
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else None

    def _open(self) -> Any:
        try:
            cap = self._open_capture(self.index, CAMERA_API)
        except (cv2.error, OSError) as exc:  # as a camera that is not there: not opened
            log.debug("camera %d: opening it raised %s", self.index, exc)
            return _Unopened()
        if self.buffer_frames is not None and cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_frames)  # best effort: False where unsupported
        return cap

    def __iter__(self) -> Iterator[Frame]:
        count, failures = 0, 0
        while not self._closed:
            why = ""  # what OpenCV said, when a read raised instead of returning False
            try:
                ok, image = self._read()
            except (cv2.error, OSError) as exc:  # a driver's error (VIDIOC_DQBUF: No such device) raised as such
                ok, image, why = False, None, f": {' '.join(str(exc).split())}"
            if ok and image is not None:
                failures = 0
                yield Frame(count, _bgr8(image, f"camera {self.index}: frame {count}"), self.name)
                count += 1
                continue
            if self._closed:
                return
            failures += 1
            if failures > self.reconnect_attempts:
                raise DeviceError(
                    f"camera {self.index} stopped delivering frames (unplugged?{why}) and did not come back after "
                    f"{self.reconnect_attempts} reconnect attempts {self.reconnect_delay_s:g} s apart; "
                    f"{count} frames were read"
                )
            log.warning(
                "camera %d: no frame (unplugged?%s); reconnecting (%d/%d)",
                self.index,
                why,
                failures,
                self.reconnect_attempts,
            )
            self._sleep(self.reconnect_delay_s)
            with self._lock:
                if self._closed:
                    return
                self._release()
                self.cap = self._open()

    def _read(self) -> tuple[bool, Any]:
        with self._lock:
            if self._closed:
                return False, None
            self._reading = True
        try:
            return self.cap.read()
        finally:
            with self._lock:
                self._reading = False
                if self._closed:  # close() came during the read and left the release to it
                    self._release()

    def _release(self) -> None:
        with contextlib.suppress(cv2.error, OSError):  # a device gone may refuse that too
            self.cap.release()

    def close(self) -> None:
        """Release the camera; from another thread than the one in a read (a pipelined run stopping while
        the camera does not answer), the release waits for that read to return: OpenCV's capture is not
        safe to release under a read in progress."""
        with self._lock:
            self._closed = True
            if not self._reading:
                self._release()


class _Unopened:
    """A capture that did not open (its opening raised): reads nothing, as cv2.VideoCapture's own."""

    def isOpened(self) -> bool:
        return False

    def read(self) -> tuple[bool, None]:
        return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def is_image_source(spec: str) -> bool:
    """Whether open_source reads `spec` as images (a folder or an image file), not as a video or camera."""
    if spec == "camera" or spec.startswith("camera:") or not spec.strip():
        return False
    return Path(spec).is_dir() or Path(spec).suffix.lower() in IMAGE_EXTENSIONS


def open_source(spec: str, option: str = OPTION, **camera_options: Any) -> FrameSource:
    """ "camera" / "camera:N", an image folder or file, or a video file. `option`: what the messages call the
    source (`--source`; the notebook's `SOURCE`)."""
    if spec == "camera" or spec.startswith("camera:"):
        text = spec.partition(":")[2] or "0"
        if not (text.isascii() and text.isdigit()):  # str.isdigit alone takes '²', which int() refuses
            # A file of that name (camera:1.mp4) is given with a folder in front: ./camera:1.mp4
            named = f"; for the file {spec}, pass ./{spec}" if os.path.exists(spec) else ""
            raise UsageError(f"camera source {spec!r}: use camera:N with N the camera number (0 for the first){named}")
        return CameraSource(int(text), **camera_options)
    if not spec.strip():  # Path("") is the current folder
        raise UsageError(f"{option} is empty: pass an image folder, an image, a video file or camera:N")
    path = Path(spec)
    if is_image_source(spec):
        return ImageFolderSource(path, option)
    if not path.exists():
        # A link that leads nowhere (a video on a disk not mounted) is named so, as an image's link is: the user
        # sees it there, so 'does not exist' would send them looking for a typing mistake.
        raise UsageError(f"source {spec} {_not_a_file(path, option)}")
    return VideoFileSource(path, option=option)
