"""Test media: frames, small MJPG videos (with a frame to corrupt) and a scripted cv2.VideoCapture."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np


def grey(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def png_claiming_size(w: int, h: int) -> bytes:
    """A PNG whose header says w x h (1-bit grey) and whose data is a few bytes: what OpenCV sees of a
    huge image before it decodes a pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def jpeg_with_orientation(image_bgr: np.ndarray, orientation: int) -> bytes:
    """`image_bgr` as a JPEG with an EXIF orientation tag (6: a viewer turns it 90 degrees clockwise to show
    it, as a phone held upright writes it), the EXIF segment written by hand (no Pillow on the board)."""
    ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    # TIFF header (little-endian), one IFD of one entry: Orientation (0x0112), SHORT, count 1, value; no next IFD.
    tiff = (
        b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    )
    tiff += struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    data = jpeg.tobytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def write_video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(grey(10 + 20 * i))
    writer.release()
    return path


def corrupt_frame(path: Path, k: int) -> None:
    """Overwrite the JPEG data of frame k of an MJPG AVI (keeps the container intact)."""
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    start, end = soi[k], soi[k + 1]
    data[start : end - 16] = bytes(end - 16 - start)
    path.write_bytes(bytes(data))


class FakeCapture:
    """cv2.VideoCapture stand-in following a script: each open takes the next list of read results (an int:
    a frame of that grey value; an array: that frame; None: a failed read; an exception: raised by that read,
    as some drivers' errors are); an open with None fails."""

    opens: ClassVar[list[int]] = []
    made: ClassVar[list[FakeCapture]] = []

    def __init__(self, script: list[int | np.ndarray | Exception | None] | None) -> None:
        self.script = list(script) if script is not None else None
        self.released = False
        self.props: dict[int, float] = {}  # what was set
        FakeCapture.made.append(self)

    @classmethod
    def factory(cls, scripts: list[list[int | np.ndarray | Exception | None] | None]):
        scripts = list(scripts)
        real = cv2.VideoCapture

        def open_capture(index: int, api: int = cv2.CAP_ANY) -> FakeCapture:
            if isinstance(index, str):  # a file (the run's own video, read back): OpenCV's own capture
                return real(index, api)
            cls.opens.append((index, api))
            return cls(scripts.pop(0) if scripts else None)

        return open_capture

    def isOpened(self) -> bool:
        return self.script is not None

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.script:
            return False, None
        v = self.script.pop(0)
        if isinstance(v, Exception):
            raise v
        if isinstance(v, np.ndarray):  # a frame as it is
            return True, v
        return (False, None) if v is None else (True, grey(v))

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def release(self) -> None:
        self.released = True
