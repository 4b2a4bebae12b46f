"""Flashing to files (the real copy and verification code paths) and to a stand-in block device."""

import fcntl
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest

from boardtests.helpers import DATA, IMAGE_SIZE, OLD_CARD, needs_image_tools, sha256
from dpupose.board import flash as flashmod
from dpupose.board.bmap import parse_bmap
from dpupose.board.flash import flash, stream_copy
from dpupose.board.images import open_image
from dpupose.board.verify import CHUNK, compare_with_image, verify_bmap, verify_digests
from dpupose.errors import DeviceError, ImageError, ToolFailed, ToolNotFoundError, UsageError

needs_bmaptool = pytest.mark.skipif(
    shutil.which("bmaptool") is None, reason="needs bmaptool (apt-get install bmap-tools)"
)

pytestmark = needs_image_tools


def flip_byte(path, offset):
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def untouched(image):
    st = image.stat()
    return (sha256(image), st.st_mtime_ns, st.st_size)


@pytest.mark.parametrize("kind", ["img", "xz", "zip"])
def test_flash_to_file_is_identical_and_source_untouched(image, base_xz, tmp_path, kind):
    if kind == "xz":
        src = tmp_path / "pynq.img.xz"
        src.write_bytes(base_xz)
    elif kind == "zip":
        src = tmp_path / "pynq.zip"
        with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.write(image, "pynq.img")
    else:
        src = image
    before = untouched(src)
    out = tmp_path / "card.img"
    report = flash(src, out, use_bmaptool=False)
    assert report.method == "stream"
    assert report.written == report.verified == IMAGE_SIZE
    assert sha256(out) == sha256(image)
    assert untouched(src) == before
    assert sorted(p.name for p in tmp_path.iterdir() if ".partial" in p.name) == []


def test_output_file_stays_sparse(image, tmp_path):
    out = tmp_path / "card.img"
    flash(image, out, use_bmaptool=False)
    assert out.stat().st_blocks * 512 < IMAGE_SIZE // 2  # the empty parts were not written


def test_one_corrupt_byte_fails_verification(image, tmp_path, cli, capsys):
    out = tmp_path / "card.img"
    info = open_image(image)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        digests = stream_copy(info, fd, sparse=True)
        os.ftruncate(fd, info.size)
    finally:
        os.close(fd)
    verify_digests(out, info.size, digests)  # as written: fine
    bad = 5 * CHUNK + 1234
    flip_byte(out, bad)
    with pytest.raises(DeviceError, match=rf"bytes {5 * CHUNK}-{6 * CHUNK - 1} of .* differ"):
        verify_digests(out, info.size, digests)
    with pytest.raises(DeviceError, match=rf"bytes {bad}-{bad} of"):
        compare_with_image(info, out)
    # A card that differs is a failed check (1); one that cannot be read is bad input (2), as in `dpu fit`.
    assert cli(["sdcard", "verify", str(image), "--device", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"verification failed: bytes {bad}-{bad} of") and captured.err == ""
    assert cli(["sdcard", "verify", str(image), "--device", str(tmp_path / "none.img"), "--no-progress"]) == 2
    assert f"--device {tmp_path / 'none.img'} does not exist: give the card" in capsys.readouterr().err


def test_verify_of_a_short_target(image, tmp_path):
    out = tmp_path / "short.img"
    out.write_bytes(image.read_bytes()[: IMAGE_SIZE - 4096])
    with pytest.raises(DeviceError, match="ends at byte .*it is smaller than the image"):
        compare_with_image(open_image(image), out)


def test_truncated_or_corrupt_image_leaves_no_target(base_xz, tmp_path):
    data = base_xz
    cut = tmp_path / "cut.img.xz"
    cut.write_bytes(data[:-50])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        flash(cut, tmp_path / "a.img", use_bmaptool=False)
    bad = tmp_path / "bad.img.xz"
    bad.write_bytes(data[:2000] + bytes([data[2000] ^ 0xFF]) + data[2001:])
    with pytest.raises(ImageError, match="corrupt"):
        flash(bad, tmp_path / "b.img", use_bmaptool=False)
    assert not (tmp_path / "a.img").exists() and not (tmp_path / "b.img").exists()
    assert [p for p in tmp_path.iterdir() if ".partial" in p.name] == []
    # A raw image cut short (its last partition reaches past its end) was written and "verified".
    short = tmp_path / "short.img"
    short.write_bytes(lzma.decompress(data)[: IMAGE_SIZE - 2 * 1024 * 1024])
    with pytest.raises(ImageError, match=r"short.img is truncated: partition 2 ends at byte"):
        flash(short, tmp_path / "c.img", use_bmaptool=False)
    assert not (tmp_path / "c.img").exists()


def test_refuses_to_write_over_the_image_itself_and_asks_before_replacing(image, tmp_path):
    with pytest.raises(UsageError, match="the image itself"):
        flash(image, image, use_bmaptool=False)
    existing = tmp_path / "old.img"
    existing.write_bytes(OLD_CARD)
    with pytest.raises(UsageError, match="not confirmed"):
        flash(image, existing, use_bmaptool=False, confirm=lambda text: False)
    assert existing.read_bytes() == OLD_CARD


def test_a_file_that_is_not_a_disk_image_is_replaced_only_with_force(image, tmp_path, cli, capsys):
    # --device model.pt --yes, a slip in a script: the user's file is not an earlier image.
    model = tmp_path / "model.pt"
    model.write_bytes(b"PK\x03\x04 weights" * 100)
    assert cli(["sdcard", "flash", str(image), "--device", str(model), "--yes", "--no-bmaptool"]) == 2
    err = capsys.readouterr().err
    assert "is not a disk image (no partition table)" in err and "--force" in err
    assert model.read_bytes() == b"PK\x03\x04 weights" * 100
    short = tmp_path / "short.img"  # less than a sector: no partition table either
    short.write_bytes(b"\x55\xaa")
    with pytest.raises(UsageError, match="not a disk image"):
        flash(image, short, use_bmaptool=False)
    empty = tmp_path / "empty.img"  # made by touch for the purpose: nothing to lose
    empty.touch()
    flash(image, empty, use_bmaptool=False)
    flash(image, model, use_bmaptool=False, force=True)
    assert sha256(empty) == sha256(model) == sha256(image)


def test_a_replaced_file_keeps_its_permissions_and_links(image, tmp_path):
    old = tmp_path / "card.img"
    old.write_bytes(OLD_CARD)
    old.chmod(0o640)
    link = tmp_path / "link.img"
    link.symlink_to(old.name)
    report = flash(image, link, use_bmaptool=False)
    assert report.target == link and link.is_symlink()  # the link still points at the file, which was replaced
    assert sha256(old) == sha256(image) and (old.stat().st_mode & 0o777) == 0o640
    fresh = tmp_path / "new.img"
    mask = os.umask(0o022)
    try:
        flash(image, fresh, use_bmaptool=False)
    finally:
        os.umask(mask)
    assert (fresh.stat().st_mode & 0o777) == 0o644  # as any new file, not mkstemp's 0600


def test_a_link_that_leads_nowhere_yet_is_written_through_and_stays_a_link(image, tmp_path):
    """As every output's (architecture.md): the file is made where the link leads, in a folder made for it; the
    copy was renamed over the link, which became a file."""
    link = tmp_path / "link.img"
    link.symlink_to("cards/new.img")
    report = flash(image, link, use_bmaptool=False)
    assert report.target == link and link.is_symlink() and os.readlink(link) == "cards/new.img"
    assert sha256(tmp_path / "cards" / "new.img") == sha256(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cards", "link.img", "pynq.img"]  # no copy left
    assert os.listdir(tmp_path / "cards") == ["new.img"]


def test_a_file_in_a_folder_given_by_a_link_that_leads_nowhere_yet_is_made_where_it_leads(image, tmp_path):
    """--device FOLDER/card.img with FOLDER a link to a folder not made yet: the folder is made where the link
    leads, as every command's output folder (mkdir refused the link with 'File exists')."""
    (tmp_path / "cards").symlink_to(os.path.join("usb", "cards"))
    report = flash(image, tmp_path / "cards" / "new.img", use_bmaptool=False)
    assert report.target == tmp_path / "cards" / "new.img" and os.readlink(tmp_path / "cards") == os.path.join(
        "usb", "cards"
    )
    assert sha256(tmp_path / "usb" / "cards" / "new.img") == sha256(image)
    assert os.listdir(tmp_path / "usb" / "cards") == ["new.img"]


def test_missing_device_node(image):
    """A name under /dev that is not there is refused, never made: were the /dev check broken, the flash
    would write a regular file there, which is removed here so that one failure does not outlive its run."""
    node = Path(f"/dev/dpupose-no-such-card-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(DeviceError, match="does not exist"):
            flash(image, str(node), use_bmaptool=False)
        assert not node.exists()
    finally:
        if node.is_file():
            node.unlink()


def test_a_link_to_a_missing_device_node_is_refused_not_written_through(image, tmp_path):
    """A link to a card that is not plugged in (`ln -s /dev/disk/by-id/usb-... card`) leads nowhere: taken for a
    new file's link, it was written through, the image copied into /dev (as root: into memory). It is refused as
    the missing name under /dev is, and the link stays as it was."""
    node = Path(f"/dev/dpupose-no-such-card-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    link = tmp_path / "card"
    link.symlink_to(node)
    try:
        with pytest.raises(DeviceError) as info:
            flash(image, link, use_bmaptool=False)
        assert str(info.value) == (
            f"{link} does not exist (the symbolic link leads to {node}): is the card reader plugged in? "
            "(`lsblk` lists disks)"
        )
        assert not node.exists() and os.readlink(link) == str(node)
    finally:
        if node.is_file():
            node.unlink()


def _shm_folder() -> Path:
    """A new folder in /dev/shm, a tmpfs mounted below /dev (skipped where it is /dev's own file system)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == Path("/dev").stat().st_dev or not os.access(shm, os.W_OK):
        pytest.skip("needs /dev/shm mounted as a file system of its own that this user can write")
    return Path(tempfile.mkdtemp(dir=shm, prefix="dpupose-test-"))


def test_a_new_file_on_a_file_system_mounted_below_dev_is_written(image):
    """/dev/shm (a tmpfs) is an ordinary place for an image file: a new name there was refused as a card not
    plugged in, since it starts with /dev/, as was a stage's --out there (its copy is made by flash). Only a
    missing name on /dev's own file system is a card."""
    folder = _shm_folder()
    try:
        target = folder / "card.img"
        report = flash(image, target, use_bmaptool=False)
        assert report.target == target and sha256(target) == sha256(image)
        assert os.listdir(folder) == ["card.img"]
        with pytest.raises(DeviceError, match="is the card reader plugged in"):  # the narrowing keeps /dev's own
            flash(image, "/dev/dpupose-no-such-card/in/a/folder", use_bmaptool=False)
    finally:
        shutil.rmtree(folder)


def test_verify_of_a_missing_file_below_dev_shm_asks_for_no_card_reader(image):
    folder = _shm_folder()
    try:
        missing = folder / "card.img"
        res = subprocess.run(
            [sys.executable, "-m", "dpupose", "sdcard", "verify", str(image), "--device", str(missing)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        assert (res.returncode, res.stderr) == (
            2,
            f"dpupose: error: --device {missing} does not exist: give the card the image was written to "
            "(/dev/sdX, /dev/mmcblkN; `lsblk` lists them) or the file it was written to\n",
        )
    finally:
        shutil.rmtree(folder)


def test_a_missing_name_below_a_dev_folder_that_cannot_be_examined_is_a_card_not_a_new_file(image, monkeypatch):
    """in_device_folder looks for the nearest folder of a missing name under /dev to tell /dev's own file system
    from one mounted below it (/dev/shm): one it cannot examine (no search permission, as an ordinary user in a
    folder of root's) is taken for /dev's, the card not plugged in, never a place to make an image file."""
    real_stat = os.stat
    locked = "/dev/dpupose-locked"

    def stat(path, *args, **kwargs):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    assert flashmod.in_device_folder(f"{locked}/card") is True
    assert flashmod.in_device_folder("/dev/dpupose-no-such/by-id/card") is True  # /dev itself, the nearest there
    with pytest.raises(DeviceError, match="is the card reader plugged in"):
        flash(image, f"{locked}/card", use_bmaptool=False)
    assert not os.path.lexists(locked)


def test_a_folder_or_character_device_target_says_what_to_pass(image, tmp_path):
    folder = tmp_path / "cards"
    folder.mkdir()
    with pytest.raises(DeviceError, match=r"is a folder: pass the card's whole disk \(/dev/sdX"):
        flash(image, folder, use_bmaptool=False)
    with pytest.raises(DeviceError, match="neither a block device nor a regular file: pass the card's whole disk"):
        flash(image, "/dev/null", use_bmaptool=False)
    assert list(folder.iterdir()) == []


@needs_bmaptool
def test_bmaptool_path_writes_mapped_blocks_and_verifies_them(image, tmp_path):
    out = tmp_path / "card.img"
    report = flash(image, out)  # raw image, bmaptool installed: a block map is made and used
    assert report.method == "bmaptool"
    assert report.written < IMAGE_SIZE // 4  # only the mapped blocks
    assert sha256(out) == sha256(image)  # holes in a fresh file read as zeros, like the image's
    bmap = tmp_path / "pynq.bmap"
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True, capture_output=True)
    bm = parse_bmap(bmap)
    assert bm.image_size == IMAGE_SIZE and bm.checksum_type == "sha256"
    offset, length, _ = bm.byte_ranges()[1]
    flip_byte(out, offset + length // 2)
    with pytest.raises(DeviceError, match="differ"):
        verify_bmap(out, bm)


@needs_bmaptool
def test_a_bmaptool_copy_that_differs_fails_the_read_back(image, tmp_path, monkeypatch):
    real_run = flashmod.run_tool

    def run_tool(argv, **kw):
        result = real_run(argv, **kw)
        if argv[:2] == ["bmaptool", "copy"]:
            flip_byte(Path(argv[-1]), 510)  # the partition table's signature: inside the first mapped range
        return result

    monkeypatch.setattr(flashmod, "run_tool", run_tool)
    old = tmp_path / "card.img"
    old.write_bytes(OLD_CARD)
    with pytest.raises(DeviceError, match="verification failed"):
        flash(image, old)
    assert old.read_bytes() == OLD_CARD


@needs_bmaptool
def test_bmap_for_another_image_is_refused(image, tmp_path):
    other = tmp_path / "other.img"
    other.write_bytes(b"x" * 8192)
    bmap = tmp_path / "other.bmap"
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(other)], check=True, capture_output=True)
    with pytest.raises(UsageError, match="block map"):
        flash(image, tmp_path / "card.img", bmap=bmap)


# --- a block device stood in for by a regular file, lsblk answered from recorded output ---------


@pytest.fixture
def fake_device(monkeypatch, tmp_path, lsblk_fixture):
    """A 'card' file of the fixture's... chosen size; lsblk replies with the given fixture."""

    def make(fixture, size):
        card = tmp_path / "card"
        with card.open("wb") as f:
            f.write(b"\xa5" * 4096)
            f.truncate(size)
        text = lsblk_fixture(fixture).replace('"size": 15931539456', f'"size": {size}', 1)

        def fake_run_tool(argv, **kw):
            assert argv[0] == "lsblk"
            return type("P", (), {"stdout": text})()

        monkeypatch.setattr(flashmod, "_classify", lambda target: "block")
        monkeypatch.setattr(flashmod, "run_tool", fake_run_tool)
        monkeypatch.setattr(flashmod, "_reread_partitions", lambda device: None)
        return card

    return make


def test_device_is_described_confirmed_written_and_verified(image, fake_device):
    card = fake_device("usb_card_reader.json", IMAGE_SIZE + 8 * 1024 * 1024)
    shown = []
    report = flash(image, card, use_bmaptool=False, confirm=lambda text: shown.append(text) or True)
    assert "STORAGE DEVICE" in shown[0] and "sdb1" in shown[0] and "will be replaced" in shown[0]
    assert report.method == "stream"
    data = card.read_bytes()
    assert data[:IMAGE_SIZE] == image.read_bytes()
    assert len(data) == IMAGE_SIZE + 8 * 1024 * 1024  # a device does not shrink


def test_device_declined_or_mounted_or_too_small_is_not_written(image, fake_device):
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    with pytest.raises(UsageError, match="not confirmed"):
        flash(image, card, use_bmaptool=False, confirm=lambda text: False)
    assert card.read_bytes()[:4096] == b"\xa5" * 4096

    card = fake_device("usb_card_reader_mounted.json", IMAGE_SIZE * 2)
    with pytest.raises(DeviceError, match="mounted"):
        flash(image, card, use_bmaptool=False)
    assert card.read_bytes()[:4096] == b"\xa5" * 4096

    card = fake_device("usb_card_reader.json", IMAGE_SIZE - 512)
    with pytest.raises(DeviceError, match="larger than"):
        flash(image, card, use_bmaptool=False)
    assert card.read_bytes()[:4096] == b"\xa5" * 4096


def _udev_may_process(path):
    """What systemd-udevd does before it probes a disk: take a shared BSD lock, without waiting
    (systemd.io/BLOCK_DEVICE_LOCKING); it leaves the disk alone when that fails."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("writer", ["stream", pytest.param("bmaptool", marks=needs_bmaptool)])
def test_the_card_is_locked_against_udev_while_written_and_read_back(image, fake_device, monkeypatch, writer):
    """Closing a written disk makes udev re-read its partition table, and a desktop then automounts
    the new partitions; a mounted ext4 changes under the read-back, which then reports a bad card."""
    from dpupose.board.tools import run_tool as real_run_tool

    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    lsblk = flashmod.run_tool  # the fixture's recorded answer
    seen = []

    def recording(name, real):
        def call(*args, **kw):
            seen.append((name, _udev_may_process(card)))
            return real(*args, **kw)

        return call

    def run_tool(argv, **kw):
        if argv[0] == "lsblk":
            return lsblk(argv, **kw)
        return recording(f"bmaptool {argv[1]}", real_run_tool)(argv, **kw)

    monkeypatch.setattr(flashmod, "run_tool", run_tool)
    monkeypatch.setattr(flashmod, "_pwrite_all", recording("write", flashmod._pwrite_all))
    monkeypatch.setattr(flashmod, "verify_digests", recording("verify", flashmod.verify_digests))
    monkeypatch.setattr(flashmod, "verify_bmap", recording("verify", flashmod.verify_bmap))
    monkeypatch.setattr(flashmod, "_reread_partitions", recording("reread", lambda device: None))
    report = flash(image, card, use_bmaptool=writer == "bmaptool")
    assert report.method == writer
    assert card.read_bytes()[:IMAGE_SIZE] == image.read_bytes()
    writes = {"stream": {"write"}, "bmaptool": {"bmaptool copy"}}[writer]
    assert {name for name, _ in seen} == {*writes, "verify", "reread"} | (
        {"bmaptool create"} if writer == "bmaptool" else set()
    )
    assert not any(free for name, free in seen if name in writes | {"verify"})
    assert seen[-1] == ("reread", True)  # the lock is gone once the card is verified


def test_a_card_locked_by_another_program_is_not_written(image, fake_device, monkeypatch):
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    monkeypatch.setattr(flashmod, "LOCK_WAIT_S", 0.3)
    with card.open("rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_SH)  # e.g. udev, stuck; or a partitioning tool
        with pytest.raises(DeviceError, match="locked by another program"):
            flash(image, card, use_bmaptool=False)
    assert card.read_bytes()[:4096] == b"\xa5" * 4096


def test_lsblk_before_util_linux_2_37_is_asked_again_without_mountpoints(image, fake_device, monkeypatch):
    """util-linux 2.34 (Ubuntu 20.04) has no MOUNTPOINTS column, and before 2.33 no PATH: lsblk refuses
    the whole command ("unknown column"), so the card must be listed with the older columns."""
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    mounted = (DATA / "lsblk" / "old_format_mounted.json").read_text()
    calls = []

    def old_lsblk(listing):  # answers as util-linux 2.32 does
        def run_tool(argv, **kw):
            calls.append(argv[4].split(","))
            unknown = [c for c in calls[-1] if c in ("MOUNTPOINTS", "PATH")]
            if unknown:
                raise ToolFailed(argv, 1, f"lsblk: unknown column: {unknown[0]}\n")
            return type("P", (), {"stdout": listing})()

        return run_tool

    monkeypatch.setattr(flashmod, "run_tool", old_lsblk(mounted.replace('"/media/pi/PYNQ"', "null")))
    flash(image, card, use_bmaptool=False)
    assert card.read_bytes()[:IMAGE_SIZE] == image.read_bytes()
    assert "MOUNTPOINT" in calls[-1]
    monkeypatch.setattr(flashmod, "run_tool", old_lsblk(mounted))  # a mounted partition is still seen
    with pytest.raises(DeviceError, match="/media/pi/PYNQ"):
        flash(image, card, use_bmaptool=False)


def _lossy_writes(monkeypatch, events):
    """The card keeps a wrong byte in its first chunk; fsync and read-back are recorded in order."""
    real_write, real_fsync, real_verify = flashmod._pwrite_all, os.fsync, flashmod.verify_digests

    def pwrite_all(fd, data, offset):
        if offset == 0:  # the partition table's chunk: written to a fresh file too (not all zeros)
            data = bytes(data[:100]) + bytes([data[100] ^ 1]) + bytes(data[101:])
        real_write(fd, memoryview(data), offset)

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)

    def verify(*args, **kw):
        events.append("verify")
        return real_verify(*args, **kw)

    monkeypatch.setattr(flashmod, "_pwrite_all", pwrite_all)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(flashmod, "verify_digests", verify)


def test_a_card_that_loses_a_write_fails_verification_after_fsync(image, fake_device, monkeypatch):
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    events = []
    _lossy_writes(monkeypatch, events)
    with pytest.raises(DeviceError, match=rf"verification failed: bytes 0-{CHUNK - 1} of"):
        flash(image, card, use_bmaptool=False)
    assert events == ["fsync", "verify"]  # read back only once the writes are on the card


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_a_card_flash_stopped_mid_write_says_the_card_is_incomplete(
    image, fake_device, monkeypatch, capsys, signum, said
):
    from dpupose.cli import main

    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    real_write = flashmod._pwrite_all

    def pwrite_all(fd, data, offset):
        real_write(fd, data, offset)
        signal.raise_signal(signum)  # Ctrl-C, or `kill`, after the first chunk is on the card

    monkeypatch.setattr(flashmod, "_pwrite_all", pwrite_all)
    rc = main(["sdcard", "flash", str(image), "--device", str(card), "--no-bmaptool", "--yes", "--no-progress"])
    err = capsys.readouterr().err.splitlines()
    assert rc == (130 if signum == signal.SIGINT else 143)
    assert err[-2:] == [
        "dpupose: warning: /dev/sdb may hold part of the image: flash it again before booting from it",
        f"dpupose: {said}",
    ]


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_a_card_flash_stopped_before_any_write_gives_no_warning_and_leaves_the_card(
    image, fake_device, monkeypatch, capsys, signum, said
):
    """Ctrl-C or `kill` while the card is opened for writing is held back until the descriptor is named (for
    the close) and delivered then, before any write: the card is as it was, and the warning that it may hold
    part of the image, which would have it flashed again for nothing, is not given."""
    from dpupose.cli import main

    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    before = card.read_bytes()
    real_open, writes = os.open, []

    def open_(path, flags, *args, **kw):
        fd = real_open(path, flags, *args, **kw)
        if os.fspath(path) == str(card) and flags & os.O_WRONLY:
            signal.raise_signal(signum)  # as the open returns: held back until `fd` names the descriptor
        return fd

    monkeypatch.setattr(flashmod.os, "open", open_)
    monkeypatch.setattr(flashmod, "_pwrite_all", lambda fd, data, offset: writes.append(offset))
    rc = main(["sdcard", "flash", str(image), "--device", str(card), "--no-bmaptool", "--yes", "--no-progress"])
    err = capsys.readouterr().err.splitlines()
    assert rc == (130 if signum == signal.SIGINT else 143)
    assert err == [f"dpupose: {said}"]
    assert writes == [] and card.read_bytes() == before


def test_a_file_that_fails_verification_is_not_put_in_place(image, tmp_path, monkeypatch):
    old = tmp_path / "card.img"
    old.write_bytes(OLD_CARD)
    _lossy_writes(monkeypatch, [])
    with pytest.raises(DeviceError, match="verification failed"):
        flash(image, old, use_bmaptool=False)
    assert old.read_bytes() == OLD_CARD
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_a_file_whose_disk_fills_up_is_named_and_the_earlier_one_kept(image, tmp_path, monkeypatch, cli, capsys):
    """A file target on a full disk said 'no space left on the target at byte N: it is smaller than the
    image', the message of a card too small, about an image file (the file system was full, not the image
    too large); the CLI names the file and the space left."""
    import errno

    old = tmp_path / "card.img"
    old.write_bytes(OLD_CARD)
    real = os.pwrite

    def pwrite(fd, data, offset):
        if offset >= 2 * CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(flashmod.os, "pwrite", pwrite)
    with pytest.raises(OSError) as info:
        flash(image, old, use_bmaptool=False)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(old))
    assert old.read_bytes() == OLD_CARD and sorted(p.name for p in tmp_path.iterdir()) == ["card.img", "pynq.img"]
    assert cli(["sdcard", "flash", str(image), "--device", str(old), "--yes", "--no-bmaptool"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dpupose: error: No space left on device for {old} (") and err.count("\n") == 1


def test_a_source_that_cannot_be_read_is_named_not_the_target(image, tmp_path, monkeypatch, cli, capsys):
    """A read error of the image (a failing USB stick: EIO, no file named) was named after the target file,
    'cannot use card.img: Input/output error', sending the user to the wrong file."""
    import errno

    from dpupose.board import images

    target = tmp_path / "card.img"
    real = images.read_chunk
    calls = []

    def read_chunk(stream, buf, info):
        calls.append(1)
        if len(calls) == 3:
            stream.readinto = lambda b: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error"))
        return real(stream, buf, info)

    monkeypatch.setattr(flashmod, "read_chunk", read_chunk)
    with pytest.raises(OSError) as info:
        flash(image, target, use_bmaptool=False)
    assert (info.value.errno, info.value.filename) == (errno.EIO, str(image))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pynq.img"]
    calls.clear()
    assert cli(["sdcard", "flash", str(image), "--device", str(target), "--yes", "--no-bmaptool"]) == 2
    assert capsys.readouterr().err.startswith(f"dpupose: error: cannot use {image}: Input/output error")


def test_a_given_block_map_needs_bmaptool(image, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match=r"bmaptool.*bmap-tools"):
        flash(image, tmp_path / "card.img", bmap=tmp_path / "x.bmap")
    assert not (tmp_path / "card.img").exists()


@needs_bmaptool
def test_block_map_beside_a_compressed_image_is_used(image, base_xz, tmp_path):
    from dpupose.board.bmap import find_bmap

    xz = tmp_path / "pynq.img.xz"
    xz.write_bytes(base_xz)
    assert find_bmap(xz) is None
    subprocess.run(
        ["bmaptool", "create", "-o", str(tmp_path / "pynq.img.bmap"), str(image)], check=True, capture_output=True
    )
    assert find_bmap(xz) == tmp_path / "pynq.img.bmap"
    report = flash(xz, tmp_path / "card.img")
    assert report.method == "bmaptool"
    assert sha256(tmp_path / "card.img") == sha256(image)


@needs_bmaptool
def test_a_block_map_is_not_used_for_an_image_that_is_not_the_zips_first_file(image, tmp_path):
    """bmaptool unpacks a .zip with funzip, which gives the first file of the archive: here the README,
    which failed bmaptool's checksums after it had started writing."""
    archive = tmp_path / "pynq.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("README.txt", "PYNQ image for the Ultra96-V2\n")
        zf.write(image, "pynq.img")
    bmap = tmp_path / "pynq.bmap"  # found beside pynq.zip
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True, capture_output=True)
    report = flash(archive, tmp_path / "card.img")
    assert report.method == "stream"
    assert sha256(tmp_path / "card.img") == sha256(image)
    with pytest.raises(UsageError, match="only the first file of a zip.*pynq.img is not the first"):
        flash(archive, tmp_path / "card2.img", bmap=bmap)
    assert not (tmp_path / "card2.img").exists()


def test_ctrl_c_as_the_image_file_temporary_is_made_leaves_none(image, tmp_path, monkeypatch):
    """A sweep (signal_sweep) over the temporaries flash makes: Ctrl-C just after mkstemp made the image
    file's .partial (before flash named it) left it beside the target, where it grows to the image's size
    once a write reaches it (it is made by os.open inside the try that removes it now). The write itself is cut short
    here: the sweep is over making the temporary."""
    from signal_sweep import signal_sweep

    class Written(Exception):
        pass

    def write(info, tmp, **kwargs):
        assert tmp.name.endswith(".partial")
        raise Written

    monkeypatch.setattr(flashmod, "_write_and_verify", write)
    out = tmp_path / "card.img"
    temporary = tmp_path / "tmp"  # flash's working folder goes there: Ctrl-C inside mkdtemp left it behind
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    real_kill, there = os.kill, []  # what was on disk as each signal was sent

    def kill(pid, signum):
        there.append((os.listdir(temporary), [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]))
        real_kill(pid, signum)

    monkeypatch.setattr(os, "kill", kill)
    kept = []
    for point in signal_sweep(signal.SIGINT):
        with pytest.raises((KeyboardInterrupt, Written)) as raised, point.armed():
            flash(image, out, use_bmaptool=False)
        # the signal, where one was sent (not lost in flash's clean-up), else the write reached
        assert type(raised.value) is (KeyboardInterrupt if point.sent else Written), point
        # Kept, as a notebook keeps its last exception: its traceback holds flash's frames, and the .partial's
        # removal must not wait for their collection (a generator context manager's did, where the signal came
        # as its __exit__ began, before it resumed the generator: point 62, with partial_copy)
        kept.append(raised.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pynq.img", "tmp"], point
        assert os.listdir(temporary) == [], point
    # Signalled with the working folder made and with the .partial made: the sweep went through both
    assert any(folders for folders, _ in there) and any(partials for _, partials in there)


@pytest.mark.parametrize("writer", ["stream", pytest.param("bmaptool", marks=needs_bmaptool)])
def test_a_copy_a_flash_killed_mid_write_left_is_removed_by_the_next(image, tmp_path, writer):
    """A flash to a file killed (kill -9, the OOM killer) while it wrote the image left its temporary
    (.NAME.XXXXXXXX.partial, tempfile's name, no PID) beside the file: it grows to the image's size, nothing
    removed it, and its name could not be told from a user's. It is .NAME.PID-XXXXXXXX.partial now, and the
    next flash to that file removes it (its process is gone); another running flash's and a user's stay."""
    out = tmp_path / "card.img"
    out.write_bytes(OLD_CARD)
    running = tmp_path / ".card.img.1-0123abcd.partial"  # another flash's: PID 1 is always running
    users = tmp_path / ".card.img.2024.partial"
    for path in (running, users):
        path.write_text("kept")
    child = """
import os, signal, sys
from dpupose.board import flash

image, out, writer = sys.argv[1:]
written = []

def pwrite_all(fd, data, offset):
    if len(written) == 2:  # two chunks are in the temporary and more are to come: killed mid-copy
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd, data, offset)
    written.append(offset)

def run_tool(argv, **kwargs):
    done = real(argv, **kwargs)
    if "copy" in argv:  # bmaptool wrote the image into the temporary, not yet checked nor renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return done

if writer == "stream":
    real, flash._pwrite_all = flash._pwrite_all, pwrite_all
else:
    real, flash.run_tool = flash.run_tool, run_tool
flash.flash(image, out, use_bmaptool=writer == "bmaptool")
"""
    args = [sys.executable, "-c", child, str(image), str(out), writer]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    _, stderr = killed.communicate()
    assert killed.returncode == -signal.SIGKILL, stderr
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".partial") and p not in (running, users)]
    assert len(left) == 1 and re.fullmatch(rf"\.card\.img\.{killed.pid}-[0-9a-f]{{8}}\.partial", left[0].name)
    size = left[0].stat().st_size
    assert 2 * CHUNK <= size < IMAGE_SIZE if writer == "stream" else size == IMAGE_SIZE
    assert out.read_bytes() == OLD_CARD  # the earlier file is as it was
    report = flash(image, out, use_bmaptool=writer == "bmaptool")
    assert report.method == writer and sha256(out) == sha256(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, users.name, "card.img", "pynq.img"])
    assert running.read_text() == users.read_text() == "kept"


@pytest.mark.parametrize("target", ["file", "card", "verify"])
def test_ctrl_c_anywhere_in_flash_or_verify_leaves_no_file_descriptor_open(tmp_path, fake_device, monkeypatch, target):
    """A sweep (signal_sweep) over flash to a file and to a card, and over sdcard verify's read-back: Ctrl-C at
    each point of the flash and verify code (and the signal deferral and context managers they use) in turn.
    One just as os.open returned the card's (or the read-back's, or the udev lock's) descriptor, before the try
    that closes it, left it open for the life of the process (a notebook's), and the card locked against udev:
    one more entry in /proc/self/fd at each such Ctrl-C. A one-chunk image keeps the sweep short."""
    from signal_sweep import signal_sweep

    image = tmp_path / "tiny.img"
    image.write_bytes(OLD_CARD + bytes(range(256)) * 4096)
    out = tmp_path / "out" / "card.img"
    if target != "file":  # a card stood in for by a file (its _classify is "block" from here on)
        reread = flashmod._reread_partitions
        card = fake_device("usb_card_reader.json", 2 * 1024 * 1024)
        monkeypatch.setattr(flashmod, "_reread_partitions", reread)  # its own open swept too (ENOTTY on a file)
        flash(image, card, use_bmaptool=False)

    def run():
        if target == "file":
            flash(image, out, use_bmaptool=False)
        elif target == "card":
            flash(image, card, use_bmaptool=False)
        else:
            compare_with_image(open_image(image), card)

    watched = ("flash.py", "verify.py", "images.py", "fsio.py", "contextlib.py")
    before = sorted(os.listdir("/proc/self/fd"))
    signalled, kept = [], []
    for point in signal_sweep(signal.SIGINT, watched=watched):
        interrupted = False
        try:
            with point.armed():
                run()
        except KeyboardInterrupt as exc:
            interrupted = True
            signalled.append(point.where)
            # Kept, as a notebook keeps its last exception: its traceback holds the frames, and no descriptor
            # may wait for their collection (a generator context manager's did, where the signal came as its
            # __exit__ began, before it resumed the generator)
            kept.append(exc)
        assert interrupted == point.sent, point  # a signal sent is not lost
        assert sorted(os.listdir("/proc/self/fd")) == before, point
    if target == "card":
        with card.open("rb") as f:  # the udev lock let go
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    opened = {"file": "_write_and_verify", "card": "_open_to_lock", "verify": "_open_uncached"}[target]
    assert any(where.startswith(f"{opened}:") for where in signalled)  # the sweep went through the opens
    run()  # and it still works
    if target == "file":
        assert out.read_bytes() == image.read_bytes() and sorted(os.listdir(out.parent)) == ["card.img"]


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_an_image_that_gives_other_than_its_promised_size_is_refused(image, tmp_path):
    """The size learnt up front (a raw file's size, an xz index, a zip's directory) is checked against
    the bytes the stream gave: a source that changed or lied under the copy is not taken as written."""
    import dataclasses

    info = open_image(image)
    for promised in (info.size - 1, info.size + 1):
        fd = os.open(tmp_path / "out.img", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(ImageError, match=rf"gave {info.size} bytes instead of the {promised} its header"):
                stream_copy(dataclasses.replace(info, size=promised), fd, sparse=True)
        finally:
            os.close(fd)


def test_the_empty_parts_of_the_image_are_written_over_a_card_s_old_data(image, fake_device):
    # Only a fresh file's holes read as zeros: on a card the image's all-zero chunks must be written.
    card = fake_device("usb_card_reader.json", IMAGE_SIZE + CHUNK)
    card.write_bytes(b"\xa5" * (IMAGE_SIZE + CHUNK))  # an old card: no byte of it reads as zero
    flash(image, card, use_bmaptool=False)
    data = card.read_bytes()
    assert data[:IMAGE_SIZE] == image.read_bytes() and data[IMAGE_SIZE:] == b"\xa5" * CHUNK


def test_a_write_taken_in_part_is_continued_where_it_stopped(image, tmp_path, monkeypatch):
    real = os.pwrite

    def pwrite(fd, data, offset):  # a device that takes 64 KiB + 7 bytes of each write
        return real(fd, bytes(data[: 65536 + 7]), offset)

    monkeypatch.setattr(flashmod.os, "pwrite", pwrite)
    out = tmp_path / "card.img"
    flash(image, out, use_bmaptool=False)
    assert sha256(out) == sha256(image)


def test_a_card_that_takes_no_more_says_at_which_byte(monkeypatch):
    """/dev/full, a character device (not a file) that answers every write with ENOSPC, after a first
    write the stand-in takes in part: the card ran out at byte 4096 + 1000."""
    real, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(offset)
        return 1000 if len(calls) == 1 else real(fd, data, offset)

    monkeypatch.setattr(flashmod.os, "pwrite", pwrite)
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(
            DeviceError,
            match=r"^no space left on the target at byte 5096: it is smaller than the image; write it to a larger "
            "card$",
        ):
            flashmod._pwrite_all(fd, memoryview(bytes(3000)), 4096)
    finally:
        os.close(fd)
    assert calls == [4096, 5096]


def test_a_write_error_names_the_card_and_what_to_try(image, fake_device, monkeypatch):
    """It said 'write error at byte N: Input/output error', naming neither the card nor what to do."""
    import errno

    def failing(fd, data, offset):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(flashmod.os, "pwrite", failing)
    fd = os.open("/dev/full", os.O_WRONLY)  # a device, as a card is
    try:
        with pytest.raises(DeviceError) as info:
            flashmod._pwrite_all(fd, memoryview(bytes(10)), 4096)
    finally:
        os.close(fd)
    assert str(info.value) == (
        "write error at byte 4096: Input/output error; the card or its reader may be failing: try another reader "
        "or card"
    )
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)  # a file standing in for /dev/sdX
    with pytest.raises(DeviceError, match=rf"^{re.escape(str(card))}: write error at byte 0: Input/output error$"):
        flash(image, card, use_bmaptool=False)


def test_bmaptool_asked_for_is_required_and_not_replaced_by_the_stream_copy(image, tmp_path, monkeypatch):
    # use_bmaptool=True requires it: a zip whose image is not its first file, or no bmaptool, is refused
    # rather than written by the built-in copy.
    archive = tmp_path / "pynq.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("README.txt", "PYNQ image for the Ultra96-V2\n")
        zf.write(image, "pynq.img")
    with pytest.raises(UsageError, match="only the first file of a zip"):
        flash(archive, tmp_path / "a.img", use_bmaptool=True)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match="bmaptool"):
        flash(image, tmp_path / "b.img", use_bmaptool=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pynq.img", "pynq.zip"]


@needs_bmaptool
def test_bmap_for_a_larger_image_is_refused(image, tmp_path):
    larger = tmp_path / "larger.img"
    larger.write_bytes(image.read_bytes() + b"\x01" * 4096)
    bmap = tmp_path / "larger.bmap"
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(larger)], check=True, capture_output=True)
    with pytest.raises(UsageError, match=rf"is for an image of {IMAGE_SIZE + 4096} bytes, not {IMAGE_SIZE}"):
        flash(image, tmp_path / "card.img", bmap=bmap)
    assert not (tmp_path / "card.img").exists()


def test_a_card_locked_for_a_moment_is_waited_for(image, fake_device):
    # udev holds its shared lock only while it handles an event (the card just plugged in): wait for it.
    import threading

    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    other = card.open("rb")
    fcntl.flock(other.fileno(), fcntl.LOCK_SH)
    timer = threading.Timer(0.5, other.close)
    timer.start()
    try:
        flash(image, card, use_bmaptool=False)
    finally:
        timer.join()
    assert card.read_bytes()[:IMAGE_SIZE] == image.read_bytes()


def test_a_new_file_gets_the_umask_s_permissions(image, tmp_path):
    mask = os.umask(0o027)
    try:
        flash(image, tmp_path / "new.img", use_bmaptool=False)
    finally:
        os.umask(mask)
    assert (tmp_path / "new.img").stat().st_mode & 0o777 == 0o640


def test_a_card_this_user_may_not_write_is_refused_before_the_question_with_the_command_for_root(
    image, fake_device, monkeypatch, tmp_path
):
    """An ordinary user (no root, not in the disk group) was shown the card, typed yes, and only then read
    "no permission to write /dev/sdb: run as root (sudo)"; and `sudo dpupose ...` is "command not found"
    where dpupose lives in a virtual environment (sudo's secure_path). It is refused before the question,
    with the command to run: the same one, with sudo and dpupose's full path."""
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)  # lsblk names it /dev/sdb
    card.chmod(0o444)  # not writable for an ordinary user; root writes it all the same, so os.access is asked
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: real_access(p, mode, **kw) and str(p) != str(card))
    program = tmp_path / "venv" / "bin" / "dpupose"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(program), "sdcard", "flash", "my card.img", "--device", str(card)])
    asked = []
    with pytest.raises(DeviceError) as caught:
        flash(image, card, use_bmaptool=False, confirm=lambda text: asked.append(text) or True)
    assert str(caught.value) == (
        "no permission to write /dev/sdb: writing a card needs root; run the command with sudo and dpupose's full "
        f"path (sudo does not keep a virtual environment on PATH): sudo {program} sdcard flash 'my card.img' "
        f"--device {card}"
    )
    assert asked == [] and card.read_bytes()[:4096] == b"\xa5" * 4096
    monkeypatch.setattr(sys, "argv", [os.path.join("sw", "dpupose", "__main__.py"), "sdcard", "flash", "x.img"])
    with pytest.raises(DeviceError, match=rf"PATH\): sudo {re.escape(sys.executable)} -m dpupose sdcard flash x.img$"):
        flash(image, card, use_bmaptool=False)
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py"])  # not a command line: no command to give
    with pytest.raises(DeviceError, match=r"^no permission to write /dev/sdb: run as root \(sudo\)$"):
        flash(image, card, use_bmaptool=False)


def test_a_card_the_lock_may_not_open_is_refused_with_the_command_for_root(image, fake_device, monkeypatch):
    """The udev lock's read-only open of the card is told as the write's is: a card this user may write but not
    read (mode 0200; os.access asked W_OK only) is 'no permission', with what to do, not the bare errno; another
    error is 'cannot open CARD: ERROR'. Nothing is written either way."""
    card = fake_device("usb_card_reader.json", IMAGE_SIZE * 2)
    real_open = os.open

    def refusing(err):
        def open_(path, flags, *args, **kwargs):
            if os.fspath(path) == os.path.realpath(card) and flags == os.O_RDONLY | os.O_CLOEXEC:
                raise OSError(err, os.strerror(err), os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        return open_

    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py"])  # not a command line: no command to give
    monkeypatch.setattr(os, "open", refusing(13))
    with pytest.raises(DeviceError, match=r"^no permission to write .*: run as root \(sudo\)$"):
        flash(image, card, use_bmaptool=False)
    monkeypatch.setattr(os, "open", refusing(5))
    with pytest.raises(DeviceError, match=rf"^cannot open {re.escape(os.path.realpath(card))}: Input/output error$"):
        flash(image, card, use_bmaptool=False)
    assert card.read_bytes()[:4096] == b"\xa5" * 4096
