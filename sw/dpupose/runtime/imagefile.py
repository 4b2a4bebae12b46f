"""Image files through Python's own file I/O, so that any file name works.

OpenCV's imread/imwrite/VideoCapture take the name as a C string: a name that is not valid UTF-8 (Python
hands it over with surrogate escapes) crashes the process. Images are therefore read and written as bytes
by Python and decoded/encoded by OpenCV in memory; video paths, which OpenCV must open itself, are checked
first (opencv_path).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dpupose.errors import DataError
from dpupose.fsio import open_new


def read_bgr(path: str | Path) -> np.ndarray | None:
    """The image as BGR uint8, or None if it does not decode; OSError if the file cannot be read, DataError
    if OpenCV refuses to decode it (an image over its size limit, which it raises for where other bad
    images give None)."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return None
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE" in str(exc):  # validateInputImageSize: more than 2**30 pixels, or a side over 2**20
            raise DataError(
                f"{path}: larger than OpenCV decodes (at most 2**30 pixels by default): scale it down, or raise "
                "the limit with the environment variable OPENCV_IO_MAX_IMAGE_PIXELS"
            ) from None
        reason = getattr(exc, "err", "") or str(exc).strip()
        raise DataError(f"{path}: cannot decode the image: OpenCV stops on it ({reason})") from None


def write_jpeg(path: str | Path, image: np.ndarray, quality: int | None = None, comment: bytes | None = None) -> bool:
    """Encode `image` (BGR) as JPEG and write it to `path`; False if OpenCV cannot encode it. A file that
    cannot be written (a full disk) is an OSError naming `path`, where cv2.imwrite would only return False.
    `comment`: put in a JPEG comment (COM) segment near the file's start, after the JFIF header (what wrote
    the file, for the next run of that writer to tell it from someone else's image of the same name). A file
    already at `path` is replaced by a new one, not written into (fsio.open_new)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality is not None else []
    try:
        ok, buf = cv2.imencode(".jpg", image, params)
    except cv2.error:  # OpenCV 4.x (the board's) raises where 5.x returns False, e.g. for a side over 65500
        return False
    if not ok:
        return False
    data = buf.tobytes()
    if comment is not None:
        at = _comment_at(data)
        data = data[:at] + _comment_segment(comment) + data[at:]
    try:
        # A new file (open_new): an image written into the one at `path` (an earlier demo's samples.jpg) changed
        # it under its other names too (a hard link kept elsewhere).
        with open_new(path, buffered=True) as f:
            f.write(data)
    except OSError as exc:  # a write's error names no file
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    return True


def opencv_path(path: str | Path) -> str:
    """`path` as a string OpenCV can open, or DataError saying to rename it. Absolute: FFmpeg, behind OpenCV's
    video files, reads a relative name such as `clip:2.mp4` or `camera:1.mp4` as a URL of protocol `clip`
    ("Protocol not found"), and pathlib drops the `./` that would keep it a file name."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"{text.encode('utf-8', 'surrogateescape')!r}: OpenCV cannot open a file whose name is not valid "
            "UTF-8; rename it"
        ) from None
    return os.path.abspath(text)


def _comment_at(data: bytes) -> int:
    """Where write_jpeg puts its comment in the JPEG `data` (or its first bytes): after SOI and APP0."""
    return 4 + int.from_bytes(data[4:6], "big") if data[2:4] == b"\xff\xe0" else 2


def _comment_segment(comment: bytes) -> bytes:
    return b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment


def has_jpeg_comment(path: str | Path, comment: bytes) -> bool:
    """Whether the file at `path` is a JPEG write_jpeg wrote with `comment` (its first kB read, no more)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    at, segment = _comment_at(head), _comment_segment(comment)
    return head.startswith(b"\xff\xd8") and head[at : at + len(segment)] == segment
