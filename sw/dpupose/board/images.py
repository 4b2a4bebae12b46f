"""SD card image files: raw `.img`, xz-compressed `.img.xz`, or a `.zip` holding one `.img`.

`open_image` checks the container before anything is written and learns the raw size up front: a raw
image's file size, the uncompressed sizes in an xz file's index (read from the end of the file, so a
truncated download is caught here), or the zip member's size from the central directory. `image_reader`
then gives the raw bytes as one stream, decompressing on the fly (nothing is extracted to disk).
The image file is only ever opened for reading.
"""

from __future__ import annotations

import enum
import io
import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dpupose.errors import ImageError, shortlist
from dpupose.fsio import not_a_file

XZ_MAGIC = b"\xfd7zXZ\x00"
XZ_FOOTER_MAGIC = b"YZ"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"


class ImageKind(enum.Enum):
    RAW = "raw"
    XZ = "xz"
    ZIP = "zip"


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    kind: ImageKind
    size: int  # raw (uncompressed) bytes
    member: str | None = None  # the .img inside a zip

    def describe(self) -> str:
        inner = f" ({self.member} inside)" if self.member else ""
        return f"{self.path}{inner}: {self.kind.value}, {self.size} bytes raw"


MBR_SIGNATURE = b"\x55\xaa"  # bytes 510-511 of a DOS partition table (GPT keeps one as protective MBR)


def check_partition_table(info: ImageInfo) -> None:
    """An SD card image starts with a partition table; anything else (a model, an archive of other
    files, a half-downloaded page) is refused before it can be written to a card."""
    buf = bytearray(512)
    with open(info.path, "rb") as f:
        n = read_chunk(image_reader(info, f), buf, info)
    if n < 512 or bytes(buf[510:512]) != MBR_SIGNATURE:
        raise ImageError(
            f"{info.path} does not look like an SD card image (no partition table in its first sector): "
            "use the PYNQ image for the Ultra96-V2 (.img, .img.xz or .zip)"
        )


def open_image(path: str | Path) -> ImageInfo:
    """Identify an image file by its first bytes, find its raw size and check that it starts with a
    partition table; ImageError if unusable."""
    info = _identify(path)
    check_partition_table(info)
    return info


def _identify(path: str | Path) -> ImageInfo:
    path = Path(path)
    if not path.exists():  # a link to nothing is named as such
        raise ImageError(
            f"image {path} {not_a_file(path, 'does not exist')}: give the PYNQ image for the Ultra96-V2 (.img, .img.xz "
            "or .zip)"
        )
    if path.is_dir():  # the download folder, or build/sdcard: name the image(s) in it
        try:
            found = sorted(
                p.name for p in path.iterdir() if p.is_file() and p.name.lower().endswith((".img", ".img.xz", ".zip"))
            )
        except OSError:
            found = []
        inside = f" ({shortlist(found)} here)" if found else ""
        raise ImageError(f"image {path} is a folder; give the image file{inside}: a .img, .img.xz or .zip holding one")
    if not path.is_file():
        raise ImageError(
            f"image {path} is not a regular file; give the image file: a .img, .img.xz or .zip holding one"
        )
    with path.open("rb") as f:
        head = f.read(6)
    name = path.name.lower()
    if head.startswith(XZ_MAGIC):
        return ImageInfo(path, ImageKind.XZ, xz_uncompressed_size(path))
    if head.startswith(ZIP_MAGIC) or name.endswith(".zip"):
        member, size = _zip_member(path)
        return ImageInfo(path, ImageKind.ZIP, size, member)
    if name.endswith(".xz"):
        raise ImageError(f"{path} is named .xz but is not an xz file: the download is corrupt, fetch it again")
    if head.startswith(GZIP_MAGIC) or name.endswith(".gz"):
        raise ImageError(f"{path} is gzip-compressed; use the .img.xz or .zip image, or gunzip it first")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"image {path} is empty: download the PYNQ image again")
    return ImageInfo(path, ImageKind.RAW, size)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """xz multibyte integer (7 bits per byte, little end first, at most 9 bytes) at pos."""
    value = 0
    for i in range(9):
        if pos + i >= len(buf):
            raise ValueError("index ends inside a number")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("number longer than 9 bytes")


def xz_uncompressed_size(path: Path) -> int:
    """Sum of the uncompressed sizes recorded in every stream's index of an .xz file.

    Layout (xz file format 1.0.4): streams back to back, each `header(12) blocks index footer(12)`,
    optionally followed by stream padding (zero bytes, a multiple of 4). The footer holds the index
    size ("backward size"); each index record holds a block's unpadded and uncompressed size.
    """
    total = 0
    with path.open("rb") as f:
        end = f.seek(0, 2)
        try:
            while end > 0:
                # Skip stream padding.
                while end >= 4:
                    f.seek(end - 4)
                    if f.read(4) != b"\0\0\0\0":
                        break
                    end -= 4
                if end < 24:
                    raise ValueError("too short for an xz stream")
                f.seek(end - 12)
                footer = f.read(12)
                crc, backward, flags, magic = struct.unpack("<I4s2s2s", footer)
                if magic != XZ_FOOTER_MAGIC or zlib.crc32(backward + flags) != crc:
                    raise ValueError("no stream footer at the end")
                index_size = (struct.unpack("<I", backward)[0] + 1) * 4
                index_start = end - 12 - index_size
                if index_start < 12:
                    raise ValueError("index larger than the file")
                f.seek(index_start)
                index = f.read(index_size)
                if index[0] != 0 or zlib.crc32(index[:-4]) != struct.unpack("<I", index[-4:])[0]:
                    raise ValueError("index damaged")
                count, pos = _read_varint(index, 1)
                blocks = 0
                for _ in range(count):
                    unpadded, pos = _read_varint(index, pos)
                    uncompressed, pos = _read_varint(index, pos)
                    blocks += (unpadded + 3) // 4 * 4
                    total += uncompressed
                stream_start = index_start - blocks - 12
                if stream_start < 0:
                    raise ValueError("blocks larger than the file")
                f.seek(stream_start)
                if f.read(6) != XZ_MAGIC:
                    raise ValueError("stream header not where the index says")
                end = stream_start
        except (ValueError, IndexError, struct.error) as exc:
            raise ImageError(
                f"{path} is truncated or corrupt ({exc}): download it again (`xz -t {path.name}` tests it)"
            ) from None
    return total


def _macos_metadata(name: str) -> bool:
    return name.startswith("__MACOSX/") or name.rpartition("/")[2].startswith("._")


def _zip_member(path: Path) -> tuple[str, int]:
    """The one disk image inside a zip: the only `.img` member, or the only file. The metadata macOS's
    Archive Utility adds (`__MACOSX/` and `._NAME` AppleDouble files, `._pynq.img` among them) is skipped."""
    try:
        with zipfile.ZipFile(path) as zf:
            files = [i for i in zf.infolist() if not i.is_dir() and not _macos_metadata(i.filename)]
            images = [i for i in files if i.filename.lower().endswith(".img")]
            chosen = images if images else files
            if len(chosen) != 1:
                names = shortlist([i.filename for i in files]) or "nothing"
                hint = (
                    " (a PyTorch checkpoint, not an SD card image)"
                    if any(i.filename.endswith("data.pkl") for i in files)
                    else ""
                )
                raise ImageError(f"{path} must hold exactly one .img file; it holds {names}{hint}")
            if chosen[0].flag_bits & 0x1:
                raise ImageError(
                    f"{path}: {chosen[0].filename} is encrypted (password-protected): unzip it with the "
                    "password and use the .img"
                )
            with zf.open(chosen[0]):  # checks the local header and the compression method
                pass
    except zipfile.BadZipFile as exc:
        raise ImageError(f"{path} is not a readable zip ({exc}): the download is truncated or corrupt") from None
    except NotImplementedError as exc:
        raise ImageError(f"{path}: {exc}; unzip it with another tool and use the .img") from None
    return chosen[0].filename, chosen[0].file_size


class XzReader(io.RawIOBase):
    """The decompressed bytes of an .xz file: concatenated streams, and the stream padding (zero bytes)
    that xz allows between and after them, which Python's lzma.open takes for a truncated stream."""

    BLOCK = 1 << 16
    MAX_OUT = 1 << 22

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        self._out = b""
        self._pos = 0  # bytes of _out already returned
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_stream(self) -> bool:
        """After a stream's end: skip padding; False at the end of the file, else a new decompressor."""
        rest = self._dec.unused_data
        while True:
            rest = rest.lstrip(b"\0")
            if rest:
                break
            rest = self._f.read(self.BLOCK)
            if not rest:
                return False
        self._dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        self._out, self._pos = self._dec.decompress(rest, self.MAX_OUT), 0
        return True

    def _fill(self) -> None:
        while self._pos == len(self._out) and not self._done:
            if self._dec.eof:
                self._done = not self._next_stream()
            elif self._dec.needs_input:
                chunk = self._f.read(self.BLOCK)
                if not chunk:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                self._out, self._pos = self._dec.decompress(chunk, self.MAX_OUT), 0
            else:
                self._out, self._pos = self._dec.decompress(b"", self.MAX_OUT), 0

    def readinto(self, buf) -> int:  # type: ignore[override]
        self._fill()
        n = min(len(buf), len(self._out) - self._pos)
        buf[:n] = memoryview(self._out)[self._pos : self._pos + n]
        self._pos += n
        return n


def image_reader(info: ImageInfo, f: BinaryIO) -> BinaryIO:
    """The image's raw bytes, read from `f`, the image's file that the caller opened for reading
    (`open(info.path, "rb")`) and closes; read them with `read_chunk`, which turns decompression errors into
    ImageError. The file is the only thing open: an xz file's decoder and a zip's reader (given the file, the
    zip closes nothing) hold no descriptor. So the caller closes it in its own `with`, never a generator
    context manager: a Ctrl-C or SIGTERM as one's __enter__ ended or its __exit__ began, before it resumed
    the generator, left the image open until the generator was collected, which the exception's traceback
    (kept by a caller, a notebook's last exception) put off for as long as it was kept."""
    if info.kind is ImageKind.RAW:
        return f
    if info.kind is ImageKind.XZ:
        return XzReader(f)  # type: ignore[return-value]
    return zipfile.ZipFile(f).open(info.member or "")  # type: ignore[return-value]


def read_chunk(stream: BinaryIO, buf: bytearray, info: ImageInfo) -> int:
    """Fill buf from stream (short only at the end); decompression errors become ImageError."""
    view = memoryview(buf)
    filled = 0
    try:
        while filled < len(buf):
            n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not n:
                break
            filled += n
    except (lzma.LZMAError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ImageError(
            f"{info.path} is corrupt ({exc or type(exc).__name__}): download it again; "
            "anything written from it so far is incomplete"
        ) from None
    except OSError as exc:  # a read error (a failing stick: EIO) names no file: it is the image's
        if exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(info.path)) from None
    return filled
