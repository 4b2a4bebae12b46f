"""Block maps read as bmaptool writes them (format 2.0) and as its 1.x formats were (no ChecksumType: SHA-1),
and the block map found beside an image. No bmaptool needed: the XML is written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpupose.board.bmap import Bmap, BmapRange, find_bmap, parse_bmap
from dpupose.errors import ImageError

SHA = "20ac2a9fbc8a95c9f6a36f020a545fa4c31e9f03dad95c911f2a73a761e981e5"


def write_bmap(path: Path, *, version: str | None = "2.0", checksum_type: str | None = "sha256", image_size="40000",
               ranges: str = f'<Range chksum="{SHA}"> 0-2 </Range>') -> Path:  # fmt: skip
    attr = f' version="{version}"' if version is not None else ""
    ctype = f"<ChecksumType> {checksum_type} </ChecksumType>" if checksum_type is not None else ""
    size = f"<ImageSize> {image_size} </ImageSize>" if image_size is not None else ""
    path.write_text(
        f'<?xml version="1.0" ?>\n<bmap{attr}>\n  {size}\n  <BlockSize> 4096 </BlockSize>\n  {ctype}\n'
        f"  <BlockMap>\n    {ranges}\n  </BlockMap>\n</bmap>\n"
    )
    return path


def test_ranges_single_blocks_and_the_last_range_clipped_to_the_image(tmp_path):
    ranges = f'<Range chksum="{SHA}"> 0-2 </Range> <Range chksum="ab"> 5 </Range> <Range> 9-12 </Range>'
    bm = parse_bmap(write_bmap(tmp_path / "a.bmap", ranges=ranges))
    assert bm == Bmap(40000, 4096, "sha256", (BmapRange(0, 2, SHA), BmapRange(5, 5, "ab"), BmapRange(9, 12, None)))
    # 40000 bytes: blocks 9 to 12 hold bytes 36864 to 39999 of it, 3136
    assert bm.byte_ranges() == [(0, 12288, SHA), (20480, 4096, "ab"), (36864, 3136, None)]
    assert bm.mapped_bytes() == 12288 + 4096 + 3136


def test_a_range_at_or_past_the_image_s_end_maps_nothing(tmp_path):
    bm = Bmap(40960, 4096, "sha256", (BmapRange(0, 0, "a"), BmapRange(10, 11, "b"), BmapRange(12, 12, "c")))
    assert bm.byte_ranges() == [(0, 4096, "a")] and bm.mapped_bytes() == 4096


@pytest.mark.parametrize(
    ("version", "checksum_type", "expected"),
    [
        ("2.0", "sha256", "sha256"),
        ("2.0", " SHA256 ", "sha256"),  # bmaptool writes it in lower case; the name is hashlib's whatever its case
        ("2.0", "md5", "md5"),
        ("2.0", None, "sha256"),
        ("1.3", None, "sha1"),  # formats 1.0 to 1.3 had SHA-1 checksums only, and no ChecksumType
        (None, None, "sha1"),  # no version: format 1.0
    ],
)
def test_the_checksum_type_is_the_map_s_or_its_format_s(tmp_path, version, checksum_type, expected):
    bm = parse_bmap(write_bmap(tmp_path / "a.bmap", version=version, checksum_type=checksum_type))
    assert bm.checksum_type == expected


@pytest.mark.parametrize(
    ("version", "attribute", "read"),
    [("1.3", "sha1", True), ("1.3", "chksum", False), ("1.4", "chksum", True), ("1.4", "sha1", False),
     ("2.0", "chksum", True), ("2.0", "sha1", False), (None, "sha1", True)],
)  # fmt: skip
def test_a_range_s_checksum_is_read_from_its_format_s_attribute(tmp_path, version, attribute, read):
    """bmap-tools' BmapCopy reads a range's checksum from "sha1" in formats 1.0 to 1.3 and from "chksum" in 1.4
    (2.0 released under a wrong number) and 2.x; the other name is no checksum there."""
    digest = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    ranges = f'<Range {attribute}="{digest}"> 0-1 </Range>'
    bm = parse_bmap(write_bmap(tmp_path / "a.bmap", version=version, checksum_type=None, ranges=ranges))
    assert bm.ranges == (BmapRange(0, 1, digest if read else None),)


def test_what_is_no_block_map_is_refused_by_name(tmp_path):
    def refused(path: Path) -> str:
        with pytest.raises(ImageError) as e:
            parse_bmap(path)
        return str(e.value)

    html = tmp_path / "page.bmap"
    html.write_text("<html><body/></html>")
    assert refused(html) == f"{html} is not a block map (root element <html>)"
    cut = tmp_path / "cut.bmap"
    cut.write_text("<bmap><ImageSize>")
    assert refused(cut).startswith(f"block map {cut} is not readable XML (")
    gone = tmp_path / "gone.bmap"
    assert refused(gone).startswith(f"block map {gone} is not readable XML ([Errno 2] No such file")
    no_size = write_bmap(tmp_path / "s.bmap", image_size=None)
    assert refused(no_size) == f"block map {no_size} lacks ImageSize or BlockSize"
    crc = write_bmap(tmp_path / "c.bmap", checksum_type="crc99")
    assert refused(crc) == f"block map {crc} uses an unknown checksum type 'crc99'"
    bad = write_bmap(tmp_path / "r.bmap", ranges="<Range> 3-x </Range>")
    assert refused(bad) == f"block map {bad} has a bad range '3-x'"


@pytest.mark.parametrize(
    ("image", "maps", "expected"),
    [
        ("pynq.img.xz", ["pynq.img.xz.bmap", "pynq.img.bmap", "pynq.bmap"], "pynq.img.xz.bmap"),
        ("pynq.img.xz", ["pynq.img.bmap", "pynq.bmap"], "pynq.img.bmap"),
        ("pynq.img.xz", ["pynq.bmap"], "pynq.bmap"),
        ("PYNQ.IMG.XZ", ["PYNQ.bmap"], "PYNQ.bmap"),  # suffixes whatever their case
        ("PYNQ.IMG.ZST", ["PYNQ.IMG.bmap"], "PYNQ.IMG.bmap"),
        ("pynq.img", ["pynq.bmap"], "pynq.bmap"),
        ("pynq.img.gz", ["pynq.img.gz.bmap", "pynq.img.bmap"], "pynq.img.gz.bmap"),
        ("pynq.xz", ["pynq.bmap"], "pynq.bmap"),
        ("pynq.img.xz", ["pynq.xz.bmap", "img.bmap", "pynq.i.bmap"], None),  # none of its names
    ],
)
def test_the_block_map_beside_an_image_is_found_by_its_names_in_order(tmp_path, image, maps, expected):
    for name in maps:
        (tmp_path / name).write_text("<bmap/>")
    (tmp_path / image).write_bytes(b"")
    assert find_bmap(tmp_path / image) == (tmp_path / expected if expected else None)


def test_a_folder_at_a_block_map_s_name_is_passed_over(tmp_path):
    (tmp_path / "pynq.img.bmap").mkdir()
    (tmp_path / "pynq.bmap").write_text("<bmap/>")
    assert find_bmap(tmp_path / "pynq.img.xz") == tmp_path / "pynq.bmap"
