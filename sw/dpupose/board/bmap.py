"""Block maps (bmap-tools' `.bmap` XML): which blocks of an image hold data, with a checksum per range.

`bmaptool copy` writes only the mapped ranges and checks each against its checksum as it reads the
image; afterwards we read the same ranges back from the target and check them against the same
checksums, so the verification covers exactly what was written.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from dpupose.errors import ImageError

COMPRESSION_SUFFIXES = (".xz", ".zip", ".gz", ".bz2", ".zst")


@dataclass(frozen=True)
class BmapRange:
    first: int  # first block
    last: int  # last block, inclusive
    checksum: str | None


@dataclass(frozen=True)
class Bmap:
    image_size: int
    block_size: int
    checksum_type: str  # hashlib name: sha256 (format 2.x), sha1 (1.x)
    ranges: tuple[BmapRange, ...]

    def byte_ranges(self) -> list[tuple[int, int, str | None]]:
        """(offset, length, checksum) of every mapped range, clipped to the image size."""
        out = []
        for r in self.ranges:
            start = r.first * self.block_size
            end = min((r.last + 1) * self.block_size, self.image_size)
            if end > start:
                out.append((start, end - start, r.checksum))
        return out

    def mapped_bytes(self) -> int:
        return sum(length for _, length, _ in self.byte_ranges())


def parse_bmap(path: Path) -> Bmap:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ImageError(f"block map {path} is not readable XML ({exc})") from None
    if root.tag != "bmap":
        raise ImageError(f"{path} is not a block map (root element <{root.tag}>)")
    version = root.get("version", "1.0")
    try:
        image_size = int((root.findtext("ImageSize") or "").strip())
        block_size = int((root.findtext("BlockSize") or "").strip())
    except ValueError:
        raise ImageError(f"block map {path} lacks ImageSize or BlockSize") from None
    ctype = (root.findtext("ChecksumType") or "").strip().lower()
    if not ctype:
        ctype = "sha1" if version.startswith("1.") else "sha256"
    if ctype not in hashlib.algorithms_available:
        raise ImageError(f"block map {path} uses an unknown checksum type {ctype!r}")
    # bmap-tools' formats 1.0 to 1.3 named a range's SHA-1 "sha1" (1.3 first wrote them); 1.4, a mistaken name
    # of 2.0, and 2.x name it "chksum", of the ChecksumType
    attribute = "sha1" if version.strip() in ("1.0", "1.1", "1.2", "1.3") else "chksum"
    ranges = []
    block_map = root.find("BlockMap")
    for el in block_map if block_map is not None else []:
        text = (el.text or "").strip()
        first, _, last = text.partition("-")
        try:
            ranges.append(BmapRange(int(first), int(last or first), el.get(attribute)))
        except ValueError:
            raise ImageError(f"block map {path} has a bad range {text!r}") from None
    return Bmap(image_size, block_size, ctype, tuple(ranges))


def find_bmap(image: Path) -> Path | None:
    """A block map beside the image: IMAGE.bmap, or the name without its compression suffix + .bmap,
    or without .img too (pynq.img.xz -> pynq.img.bmap, pynq.bmap)."""
    names = [image.name + ".bmap"]
    stem = image.name
    for suffix in COMPRESSION_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            names.append(stem + ".bmap")
            break
    if stem.lower().endswith(".img"):
        names.append(stem[:-4] + ".bmap")
    for name in names:
        candidate = image.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def bmaptool_copy_argv(image: Path, bmap: Path, target: str) -> list[str]:
    return ["bmaptool", "copy", "--bmap", str(bmap), str(image), target]


def bmaptool_create_argv(image: Path, bmap_out: Path) -> list[str]:
    return ["bmaptool", "create", "-o", str(bmap_out), str(image)]
