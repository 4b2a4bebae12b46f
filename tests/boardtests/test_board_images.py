"""Image containers: raw sizes found up front (checked against xz's own listing), bad files caught."""

import gzip
import lzma
import os
import shutil
import subprocess
import zipfile

import pytest

from dpupose.board.images import ImageKind, image_reader, open_image, read_chunk
from dpupose.errors import ImageError

needs_xz = pytest.mark.skipif(shutil.which("xz") is None, reason="needs the xz command for an independent listing")


def xz_listed_size(path) -> int:
    out = subprocess.run(["xz", "--robot", "--list", str(path)], capture_output=True, text=True, check=True).stdout
    totals = next(line for line in out.splitlines() if line.startswith("totals"))
    return int(totals.split("\t")[4])


def read_all(info) -> bytes:
    buf = bytearray(1 << 16)
    parts = []
    with open(info.path, "rb") as f:
        s = image_reader(info, f)
        while n := read_chunk(s, buf, info):
            parts.append(bytes(buf[:n]))
    return b"".join(parts)


@pytest.fixture
def raw(tmp_path):
    data = bytearray(os.urandom(300_000) + bytes(500_000) + b"end")
    data[510:512] = b"\x55\xaa"  # a partition table's signature, as every SD card image has
    path = tmp_path / "x.img"
    path.write_bytes(bytes(data))
    return path


@needs_xz
def test_xz_size_from_index_matches_xz_list(raw, tmp_path):
    # Several blocks (block size 64 KiB) in one stream.
    xz = tmp_path / "x.img.xz"
    subprocess.run(["xz", "-k", "-T1", "--block-size=65536", "-c", str(raw)], stdout=xz.open("wb"), check=True)
    info = open_image(xz)
    assert info.kind is ImageKind.XZ
    assert info.size == xz_listed_size(xz) == raw.stat().st_size
    assert read_all(info) == raw.read_bytes()


@needs_xz
def test_xz_size_with_concatenated_streams_and_padding(raw, tmp_path):
    a = lzma.compress(raw.read_bytes())
    b = lzma.compress(b"tail" * 1000)
    xz = tmp_path / "multi.img.xz"
    xz.write_bytes(a + b"\0" * 8 + b + b"\0" * 4)
    assert open_image(xz).size == xz_listed_size(xz) == raw.stat().st_size + 4000
    assert read_all(open_image(xz)) == raw.read_bytes() + b"tail" * 1000  # read through the padding


def test_truncated_xz_is_caught_before_reading(raw, tmp_path):
    data = lzma.compress(raw.read_bytes())
    xz = tmp_path / "cut.img.xz"
    xz.write_bytes(data[: len(data) - 30])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(xz)


def test_corrupt_xz_data_fails_while_reading(raw, tmp_path):
    data = bytearray(lzma.compress(raw.read_bytes()))
    data[len(data) // 2] ^= 0xFF  # inside the compressed block; index and footer intact
    xz = tmp_path / "bad.img.xz"
    xz.write_bytes(bytes(data))
    info = open_image(xz)
    with pytest.raises(ImageError, match="corrupt"):
        read_all(info)


def test_not_xz_despite_name(tmp_path):
    p = tmp_path / "fake.img.xz"
    p.write_bytes(b"hello")
    with pytest.raises(ImageError, match="not an xz file"):
        open_image(p)


def test_zip_member_and_size(raw, tmp_path):
    z = tmp_path / "pynq.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", "hello")
        zf.write(raw, "pynq_v3.0.1.img")
    info = open_image(z)
    assert (info.kind, info.member, info.size) == (ImageKind.ZIP, "pynq_v3.0.1.img", raw.stat().st_size)
    assert read_all(info) == raw.read_bytes()


def test_a_zip_made_on_macos_is_read_past_its_metadata(raw, tmp_path):
    # Archive Utility adds __MACOSX/._NAME (AppleDouble) beside every file: ._pynq.img is no second image.
    z = tmp_path / "pynq.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(raw, "pynq/pynq.img")
        zf.writestr("__MACOSX/pynq/._pynq.img", b"\x00\x05\x16\x07" + bytes(80))
        zf.writestr("pynq/._pynq.img", b"\x00\x05\x16\x07" + bytes(80))
    info = open_image(z)
    assert (info.member, info.size) == ("pynq/pynq.img", raw.stat().st_size)
    assert read_all(info) == raw.read_bytes()


def test_encrypted_zip_is_refused_with_what_to_do(raw, tmp_path):
    z = tmp_path / "enc.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.write(raw, "pynq.img")
    data = bytearray(z.read_bytes())
    # Set the "encrypted" bit (general purpose flag bit 0) in the local and the central header.
    data[6] |= 1
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 1
    z.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="encrypted .* unzip it with the password"):
        open_image(z)


def test_zip_with_two_images_or_truncated_is_refused(raw, tmp_path):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(raw, "a.img")
        zf.write(raw, "b.img")
    with pytest.raises(ImageError, match=r"exactly one \.img"):
        open_image(z)
    many = tmp_path / "many.zip"  # a long list is cut short
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(8):
            zf.writestr(f"archive/data/{i}", b"x")
    want = r"holds archive/data/0, archive/data/1, archive/data/2, archive/data/3 and 4 more$"
    with pytest.raises(ImageError, match=want):
        open_image(many)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(z.read_bytes()[:-100])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(cut)


def test_corrupt_zip_data_fails_while_reading(raw, tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.write(raw, "pynq.img")
    data = bytearray(z.read_bytes())
    data[1000] ^= 0x01  # inside the stored member: the CRC check at the end fails
    z.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt"):
        read_all(open_image(z))


def test_raw_gzip_missing_and_empty(raw, tmp_path):
    assert open_image(raw).size == raw.stat().st_size
    gz = tmp_path / "x.img.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00rest")
    with pytest.raises(ImageError, match="gzip"):
        open_image(gz)
    with pytest.raises(ImageError) as info:
        open_image(tmp_path / "nope.img")
    assert str(info.value) == (
        f"image {tmp_path / 'nope.img'} does not exist: give the PYNQ image for the Ultra96-V2 (.img, .img.xz or .zip)"
    )
    empty = tmp_path / "empty.img"
    empty.touch()
    with pytest.raises(ImageError, match=r"^image .*empty\.img is empty: download the PYNQ image again$"):
        open_image(empty)


def test_a_folder_given_as_the_image_names_the_images_in_it(tmp_path):
    # "image DIR is not a regular file" said what it was not, not what to give.
    folder = tmp_path / "downloads"
    folder.mkdir()
    with pytest.raises(ImageError) as e:
        open_image(folder)
    assert str(e.value) == f"image {folder} is a folder; give the image file: a .img, .img.xz or .zip holding one"
    for name in ("pynq.img.xz", "notes.txt", "b.zip", "A.IMG"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.img").mkdir()
    with pytest.raises(ImageError) as e:
        open_image(folder)
    assert str(e.value) == (
        f"image {folder} is a folder; give the image file (A.IMG, b.zip, pynq.img.xz here): a .img, .img.xz or .zip "
        "holding one"
    )
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe is not a regular file; give the image file: a \.img, \.img\.xz"):
        open_image(fifo)


def test_a_file_without_partition_table_is_not_an_image(tmp_path):
    model = tmp_path / "model.img"
    model.write_bytes(os.urandom(4096))
    with pytest.raises(ImageError, match="does not look like an SD card image"):
        open_image(model)
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("disk.img", b"not a disk" * 100)
    with pytest.raises(ImageError, match="no partition table"):
        open_image(z)


def test_a_zip_or_gzip_known_by_its_name_or_its_bytes_alone_is_named_as_such(raw, tmp_path):
    # A browser's saved error page under the .zip's name; a gzip file under a .img name.
    page = tmp_path / "pynq.zip"
    page.write_text("<html><body>404 Not Found</body></html>\n")
    with pytest.raises(
        ImageError, match=r"pynq.zip is not a readable zip \(.*\): the download is truncated or corrupt"
    ):
        open_image(page)
    gz = tmp_path / "pynq.img"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(ImageError, match="pynq.img is gzip-compressed; use the .img.xz or .zip image, or gunzip it"):
        open_image(gz)


def test_a_zip_of_four_files_is_listed_whole_and_a_checkpoint_is_named(tmp_path):
    four = tmp_path / "four.zip"
    with zipfile.ZipFile(four, "w") as zf:
        for name in "abcd":
            zf.writestr(name, b"x")
    with pytest.raises(ImageError, match=r"it holds a, b, c, d$"):
        open_image(four)
    with zipfile.ZipFile(four, "a") as zf:
        zf.writestr("e", b"x")
    with pytest.raises(ImageError, match=r"it holds a, b, c, d and 1 more$"):
        open_image(four)
    model = tmp_path / "model.zip"  # what torch.save writes: a zip of archive/data.pkl and the tensors
    with zipfile.ZipFile(model, "w") as zf:
        for name in ("archive/data.pkl", "archive/data/0", "archive/version"):
            zf.writestr(name, b"x")
    with pytest.raises(ImageError, match=r"\(a PyTorch checkpoint, not an SD card image\)$"):
        open_image(model)


def test_an_xz_footer_that_fails_its_crc_is_caught_before_reading(raw, tmp_path):
    # The stream flags in the footer changed (CRC64 said to be CRC32): the footer's own CRC32 catches it up front.
    data = bytearray(lzma.compress(raw.read_bytes()))
    assert data[-3:-2] == b"\x04"  # footer: CRC32, backward size, stream flags (0x00, check type), "YZ"
    data[-3] = 0x01
    xz = tmp_path / "flags.img.xz"
    xz.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"truncated or corrupt \(no stream footer at the end\)"):
        open_image(xz)


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def _descriptors_of(path) -> int:
    real = os.path.realpath(path)
    links = [f"/proc/self/fd/{fd}" for fd in os.listdir("/proc/self/fd")]
    return sum(os.path.exists(link) and os.readlink(link) == real for link in links)  # not the listing's, closed


@needs_xz
@pytest.mark.parametrize("kind", ["raw", "xz", "zip"])
def test_the_reader_holds_no_descriptor_of_its_own(raw, tmp_path, kind):
    """image_reader reads through the caller's file alone (a zip's reader is given it, an xz decoder wraps it), so
    the caller's `with` closes everything it opened: one descriptor of the image while it is read, none once the
    `with` ends though the reader is still referenced (kept, as a kept exception's traceback keeps a frame)."""
    path = raw
    if kind == "xz":
        path = tmp_path / "x.img.xz"
        path.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    elif kind == "zip":
        path = tmp_path / "x.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(raw, "x.img")
    info = open_image(path)
    buf = bytearray(1 << 16)
    counts = []
    with open(info.path, "rb") as f:
        reader = image_reader(info, f)
        while read_chunk(reader, buf, info):
            counts.append(_descriptors_of(path))
    assert counts and set(counts) == {1}
    assert _descriptors_of(path) == 0 and reader is not None
