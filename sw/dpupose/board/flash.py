"""Write an SD card image to a card (a block device) or to a regular file, then verify it.

Two writers:
- `bmaptool copy` when bmaptool is installed and a block map is at hand (given, found beside the image,
  or created with `bmaptool create` for a raw image): only mapped blocks are written, each checked
  against the map's checksum as it is read; the same ranges are then read back and checked again.
- otherwise a streaming copy: the image is decompressed on the fly in 4 MiB chunks, each chunk's
  SHA-256 is kept, the target is fsync'ed and read back chunk by chunk.

Safety (block devices): the device is inspected with lsblk and refused when it is mounted, the system
disk, not removable (unless forced), a partition or read-only (always); the user sees its size, model
and partitions and must confirm. The device is opened with O_EXCL (the kernel refuses if anything has
it mounted), and a BSD lock (flock LOCK_EX) on it is held while it is written and read back: udev
leaves a locked disk alone, so the new partitions are not probed and automounted (a mounted ext4
changes under the verification) before the image is checked. A regular-file target is written to a
temporary file beside it (`.NAME.PID-XXXXXXXX.partial`, which the next flash to it removes if a killed
flash left it) and renamed into place only after verification; the image file itself is only ever read.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dpupose.board import bmap as bmaplib
from dpupose.board import devices
from dpupose.board.images import ImageInfo, ImageKind, image_reader, open_image, read_chunk
from dpupose.board.partitions import read_mbr
from dpupose.board.progress import Progress
from dpupose.board.tools import have_tool, require_tool, run_tool, sudo_command
from dpupose.board.verify import CHUNK, chunk_digest, compare_with_image, verify_bmap, verify_digests
from dpupose.errors import DeviceError, ImageError, ToolFailed, UsageError
from dpupose.fsio import (
    current_umask,
    make_dirs,
    new_partial,
    remove_partial,
    remove_stale_partials,
    signals_deferred,
)

log = logging.getLogger(__name__)

BLKRRPART = 0x125F  # ioctl: re-read the partition table
# On a device, flush every 128 MiB: the progress bar then shows the card's speed rather than the page
# cache's, and dirty memory stays bounded.
SYNC_EVERY = 32 * CHUNK
ZEROS = bytes(CHUNK)
LOCK_WAIT_S = 10  # udev holds its shared lock on a disk only while it processes an event

# confirm(description) -> True to go ahead; the CLI prints the description and asks.
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class FlashReport:
    image: ImageInfo
    target: Path
    method: str  # "bmaptool" or "stream"
    written: int  # bytes written (mapped bytes for bmaptool)
    verified: int  # bytes read back and checked


def in_device_folder(path: str | os.PathLike) -> bool:
    """Whether a missing `path` (through links) would be made in /dev's own file system, where the kernel makes
    device nodes (/dev/sdb, /dev/disk/by-id/...): a name there that is missing is a card not plugged in, never a
    new file. A file system mounted below /dev, such as /dev/shm's tmpfs, is an ordinary place for files."""
    real = os.path.realpath(path)
    if not (real == "/dev" or real.startswith("/dev/")):
        return False
    folder = os.path.dirname(real)
    while True:  # the nearest folder that is there: /dev itself when /dev/disk/by-id is not
        try:
            return os.stat(folder).st_dev == os.stat("/dev").st_dev
        except FileNotFoundError:
            folder = os.path.dirname(folder)
        except OSError:
            return True


def _classify(target: Path) -> str:
    """ "block", "file" (existing regular file), "new" (to be created)."""
    try:
        st = target.stat()
    except FileNotFoundError:
        # A name under /dev, or a link to one (`ln -s /dev/disk/by-id/usb-... card`) with the card unplugged: never
        # made. Taken for a new file, the link was written through, the image copied into /dev (memory, as root).
        # A file system mounted below /dev (/dev/shm) takes new files as any other does.
        real = os.path.realpath(target)
        if in_device_folder(target):
            where = "" if real == os.path.abspath(target) else f" (the symbolic link leads to {real})"
            raise DeviceError(
                f"{target} does not exist{where}: is the card reader plugged in? (`lsblk` lists disks)"
            ) from None
        return "new"
    if stat.S_ISBLK(st.st_mode):
        return "block"
    if stat.S_ISREG(st.st_mode):
        return "file"
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "neither a block device nor a regular file"
    raise DeviceError(
        f"{target} is {kind}: pass the card's whole disk (/dev/sdX or /dev/mmcblkN; `lsblk` lists them) "
        "or the name of an image file to write"
    )


@dataclass
class Writing:
    """Whether a write to the target has begun: from then on a first byte may have landed on it."""

    begun: bool = False


def stream_copy(
    info: ImageInfo, fd: int, *, sparse: bool, progress: Progress | None = None, writing: Writing | None = None
) -> list[bytes]:
    """Copy the image's raw bytes to fd from offset 0; returns the SHA-256 of each CHUNK.

    sparse: skip writing all-zero chunks (only for a fresh file, whose holes read as zeros).
    writing: marked begun before the first write to fd.
    """
    digests: list[bytes] = []
    buf = bytearray(CHUNK)
    pos = 0
    with open(info.path, "rb") as f:  # closed in this frame: see image_reader
        stream = image_reader(info, f)
        while True:
            n = read_chunk(stream, buf, info)
            if n == 0:
                break
            data = memoryview(buf)[:n]
            digests.append(chunk_digest(data))
            # bytearray == bytes compares with memcmp; a memoryview comparison would be ~50x slower.
            zero = sparse and (buf == ZEROS if n == CHUNK else buf[:n] == ZEROS[:n])
            if not zero:
                if writing is not None:
                    writing.begun = True
                _pwrite_all(fd, data, pos)
            pos += n
            if not sparse and pos % SYNC_EVERY == 0:
                os.fdatasync(fd)
            if progress:
                progress.update(n)
    if pos != info.size:
        raise ImageError(
            f"{info.path} gave {pos} bytes instead of the {info.size} its header promises: the image is "
            "truncated or corrupt, and the target holds an incomplete copy; download the image again"
        )
    return digests


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Write all of `data` at `offset`. A device that takes no more is smaller than the image; a file whose
    disk is full raises the OSError, for the caller to name the file (its file system, not the image, is
    what is too small)."""
    done = 0
    while done < len(data):
        try:
            done += os.pwrite(fd, data[done:], offset + done)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and stat.S_ISREG(os.fstat(fd).st_mode):
                raise
            if exc.errno == errno.ENOSPC:
                raise DeviceError(
                    f"no space left on the target at byte {offset + done}: it is smaller than the image; write it to "
                    "a larger card"
                ) from None
            try:
                card = not stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                card = False
            advice = "; the card or its reader may be failing: try another reader or card" if card else ""
            raise DeviceError(f"write error at byte {offset + done}: {exc.strerror}{advice}") from None


def _bmap_for(info: ImageInfo, given: Path | None, workdir: Path, use_bmaptool: bool | None) -> Path | None:
    """The block map to use with bmaptool, or None for the streaming copy."""
    if use_bmaptool is False and given is not None:
        raise UsageError(
            "--bmap is the block map for bmaptool, which --no-bmaptool turns off: drop one of the two "
            "(the built-in copy writes and verifies every byte)"
        )
    if use_bmaptool is False:
        return None
    if info.kind is ImageKind.ZIP and not _first_zip_member(info):
        # bmaptool unpacks a .zip with funzip, which reads its first member only: that would be written.
        if given is not None or use_bmaptool:
            raise UsageError(
                f"bmaptool reads only the first file of a zip, and {info.member} is not the first in "
                f"{info.path}: unzip the image and give the .img, or drop --bmap"
            )
        return None
    if given is not None or use_bmaptool:
        require_tool("bmaptool")  # asked for explicitly: say how to install it
    elif not have_tool("bmaptool"):
        return None
    if given is not None:
        return given
    found = bmaplib.find_bmap(info.path)
    if found is not None:
        log.info("using block map %s", found)
        return found
    if info.kind is ImageKind.RAW:
        created = workdir / (info.path.name + ".bmap")
        run_tool(bmaplib.bmaptool_create_argv(info.path, created))
        return created
    return None


def _first_zip_member(info: ImageInfo) -> bool:
    """Whether the image is the zip's first file in the archive (what funzip extracts)."""
    with zipfile.ZipFile(info.path) as zf:
        return min(zf.infolist(), key=lambda i: i.header_offset).filename == info.member


def _write_and_verify(
    info: ImageInfo,
    dest: Path,
    *,
    bmap_path: Path | None,
    fresh_file: bool,
    exclusive: bool,
    progress_on: bool,
    writing: Writing | None = None,
) -> tuple[str, int, int]:
    """Write the image to `dest` and read it back; `writing` is marked begun once a byte may be on `dest`."""
    if bmap_path is not None:
        bm = bmaplib.parse_bmap(bmap_path)
        if bm.image_size != info.size:
            raise UsageError(
                f"block map {bmap_path} is for an image of {bm.image_size} bytes, not {info.size}: "
                "give the matching .bmap or --no-bmaptool"
            )
        if writing is not None:  # bmaptool writes from its start on
            writing.begun = True
        run_tool(bmaplib.bmaptool_copy_argv(info.path, bmap_path, str(dest)), capture=not progress_on)
        checked = Progress(bm.mapped_bytes(), "verify", enabled=progress_on)
        if all(c is not None for _, _, c in bm.byte_ranges()):
            verify_bmap(dest, bm, checked)
        else:
            ranges = [(o, n) for o, n, _ in bm.byte_ranges()]
            compare_with_image(info, dest, ranges, checked)
        checked.close()
        return "bmaptool", bm.mapped_bytes(), bm.mapped_bytes()

    flags = os.O_WRONLY | (os.O_EXCL if exclusive else 0)
    fd: int | None = None
    try:
        try:
            # Ctrl-C or SIGTERM as os.open returned, before `fd` named the descriptor, would leave the card open
            # (for the life of a notebook's process): held back until the finally below can close it.
            with signals_deferred():
                fd = os.open(dest, flags)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise DeviceError(f"{dest} is in use (mounted or held by another program): unmount it") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _no_permission(dest, card=not fresh_file) from None
            raise DeviceError(f"cannot open {dest}: {exc.strerror}") from None
        bar = Progress(info.size, "write ", enabled=progress_on)
        try:
            digests = stream_copy(info, fd, sparse=fresh_file, progress=bar, writing=writing)
        except DeviceError as exc:  # _pwrite_all's, which knows the descriptor only: the card is named
            if fresh_file:  # a temporary .partial's name, which is not the file the user gave
                raise
            raise DeviceError(f"{dest}: {exc}") from None
        bar.close()
        if fresh_file:
            os.ftruncate(fd, info.size)
        os.fsync(fd)
    finally:
        if fd is not None:
            os.close(fd)
    checked = Progress(info.size, "verify", enabled=progress_on)
    verify_digests(dest, info.size, digests, checked)
    checked.close()
    return "stream", info.size, info.size


def _open_to_lock(device: str) -> int:
    """The whole disk's descriptor for _lock_device: read-only and without O_EXCL, so that bmaptool (O_EXCL)
    can open it. Opened with signals deferred and closed in the caller's own frame (see _flash_device)."""
    try:
        return os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _no_permission(device) from None
        raise DeviceError(f"cannot open {device}: {exc.strerror}") from None


def _lock_device(fd: int, device: str) -> None:
    """Take a BSD lock (LOCK_EX) on the whole disk, held until `fd` is closed. systemd-udevd does not process a
    disk locked so (https://systemd.io/BLOCK_DEVICE_LOCKING/); otherwise closing the written device makes it
    re-read the partition table at once, and a desktop automounts the new partitions while they are being
    read back."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"{device} is locked by another program (a partitioning or flashing tool?): close it and try again"
                ) from None
            time.sleep(0.1)


def _reread_partitions(device: Path) -> None:
    fd: int | None = None
    try:
        with signals_deferred():  # as in _flash_device: until `fd` names it, for the finally to close it
            fd = os.open(device, os.O_RDONLY)
        fcntl.ioctl(fd, BLKRRPART)
    except OSError as exc:
        log.info("the kernel did not re-read the partition table of %s (%s); replug the card", device, exc)
    finally:
        if fd is not None:
            os.close(fd)


def flash(
    image: str | Path,
    target: str | Path,
    *,
    bmap: str | Path | None = None,
    use_bmaptool: bool | None = None,
    force: bool = False,
    confirm: Confirm | None = None,
    progress: bool = False,
) -> FlashReport:
    """Write `image` to `target` (block device or file) and verify it; see the module docstring.

    confirm: asked before a device (or an existing file) is overwritten; None means "yes" (--yes).
    use_bmaptool: True requires it, False avoids it, None uses it when installed.
    """
    info = open_image(image)
    if info.kind is ImageKind.RAW:  # a cut download: its partitions reach past its end (xz and zip say so)
        read_mbr(info.path, gpt_ok=True)
    target = Path(target)
    kind = _classify(target)
    if kind != "new" and os.path.samefile(info.path, target):
        raise UsageError(f"{target} is the image itself: give another target")
    work: str | None = None
    try:
        # Ctrl-C or SIGTERM inside mkdtemp, after it made the folder, left it in the temporary folder (each
        # run of the tests left some): held back until `work` names it for the finally below.
        with signals_deferred():
            work = tempfile.mkdtemp(prefix="dpupose-flash-")
        bmap_path = _bmap_for(info, Path(bmap) if bmap else None, Path(work), use_bmaptool)
        if kind == "block":
            return _flash_device(info, target, bmap_path, force=force, confirm=confirm, progress=progress)
        if kind == "file" and not force:
            _check_replaceable_file(target)
        return _flash_file(info, target, bmap_path, exists=kind == "file", confirm=confirm, progress=progress)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _check_replaceable_file(target: Path) -> None:
    """An existing file is replaced only when it is empty or a disk image (a partition table: the MBR's
    0x55AA, which a GPT disk's protective MBR has too): `--device model.pt --yes`, a slip of the hand in a
    script, would otherwise put the image over the user's file."""
    try:
        with open(target, "rb") as f:
            sector = f.read(512)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(target)) from None
    if sector and not (len(sector) == 512 and sector[510:512] == b"\x55\xaa"):
        raise UsageError(
            f"{target} exists and is not a disk image (no partition table): flash would replace it with the "
            "image. Give the card (/dev/sdX) or a new file name, or pass --force to replace it"
        )


def _no_permission(device: str | Path, card: bool = True) -> DeviceError:
    """Writing a card needs root (or the disk group): the command to run, where this is the dpupose command."""
    command = sudo_command() if card else None
    if command is None:
        return DeviceError(f"no permission to write {device}: run as root (sudo)")
    return DeviceError(
        f"no permission to write {device}: writing a card needs root; run the command with sudo and "
        f"dpupose's full path (sudo does not keep a virtual environment on PATH): {command}"
    )


def _lsblk(device: str) -> str:
    """lsblk's JSON listing of the device; util-linux before 2.37 refuses the MOUNTPOINTS column (its
    message may be translated), so a failure is retried with the columns every lsblk with --json has."""
    try:
        return run_tool(devices.lsblk_argv(device)).stdout
    except ToolFailed:
        return run_tool(devices.lsblk_argv(device, old=True)).stdout


def _flash_device(
    info: ImageInfo,
    device: Path,
    bmap_path: Path | None,
    *,
    force: bool,
    confirm: Confirm | None,
    progress: bool,
) -> FlashReport:
    real = os.path.realpath(device)
    listing = _lsblk(real)
    dev = devices.inspect_device(listing, real, mmc_type=devices.mmc_card_type(os.path.basename(real)))
    rootno = devices.root_devno()
    devices.check_device(dev, info.size, force=force, root_devno=rootno)
    text = (
        f"{devices.describe(dev, rootno)}\n"
        f"Everything on {dev.path} will be replaced by {info.path.name} ({devices.human_bytes(info.size)})."
    )
    log.info("%s", text)
    if not os.access(real, os.W_OK):  # before the question: a `yes` would only be refused after it
        raise _no_permission(dev.path)
    if confirm is not None and not confirm(text):
        raise UsageError("not confirmed: nothing was written")
    writing = Writing()
    # The card locked against udev (_lock_device) until it is verified: udev may look at the new partitions then.
    # Closed, the lock let go, in this frame's finally however the write ends, a Ctrl-C while waiting for the lock
    # included; not in a generator context manager's __exit__, which a signal as it began (before it resumed the
    # generator) left to the generator's collection: the card open and locked, the next flash refused, for as long
    # as the exception's traceback was kept (a notebook's last exception).
    lock: int | None = None
    try:
        with signals_deferred():  # until `lock` names the descriptor, for the finally to close it
            lock = _open_to_lock(real)
        _lock_device(lock, real)
        try:
            method, written, verified = _write_and_verify(
                info,
                Path(real),
                bmap_path=bmap_path,
                fresh_file=False,
                exclusive=not force,
                progress_on=progress,
                writing=writing,
            )
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM mid-write: the CLI says only "interrupted"/"terminated"
            # Before the first write (one held back while the card was opened, given once its descriptor is
            # named for the close), the card is as it was: nothing to flash again.
            if writing.begun:
                print(
                    f"dpupose: warning: {dev.path} may hold part of the image: flash it again before booting from it",
                    file=sys.stderr,
                )
            raise
    finally:
        if lock is not None:
            os.close(lock)
    _reread_partitions(Path(real))
    return FlashReport(info, device, method, written, verified)


def _flash_file(
    info: ImageInfo,
    target: Path,
    bmap_path: Path | None,
    *,
    exists: bool,
    confirm: Confirm | None,
    progress: bool,
) -> FlashReport:
    if exists and confirm is not None and not confirm(f"{target} exists and will be replaced by the image."):
        raise UsageError("not confirmed: nothing was written")
    mode, given = None, target
    if target.is_symlink():  # a link to the file, or to none yet: write the file there, keep the link
        target = Path(os.path.realpath(target))
    if exists:
        mode = stat.S_IMODE(target.stat().st_mode)  # keep its permissions
    make_dirs(target.parent)
    # The copy a flash killed mid-write (kill -9, the OOM killer, a power cut) left, as large as the image,
    # goes first: nothing else would remove it, and the disk may not hold two.
    remove_stale_partials(target)
    tmp = new_partial(target)  # .NAME.PID-XXXXXXXX.partial, removed unless renamed into place
    try:
        # Ctrl-C or SIGTERM as os.open made the file, before the descriptor is closed, would leave it open: held
        # back until it is closed (the file itself goes in the finally).
        with signals_deferred():
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # name the file the user gave, not the temporary one
                raise type(exc)(exc.errno, exc.strerror, str(given)) from None
            os.close(fd)
        if bmap_path is not None:
            tmp.unlink()  # bmaptool creates the file itself
        try:
            method, written, verified = _write_and_verify(
                info, tmp, bmap_path=bmap_path, fresh_file=True, exclusive=False, progress_on=progress
            )
        except OSError as exc:  # a full disk: name the file the user gave, not the temporary one
            if exc.filename not in (None, str(tmp)) or exc.errno is None:  # the image's own (a read error)
                raise
            raise type(exc)(exc.errno, exc.strerror, str(given)) from None
        os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())  # made 0600 until verified
        os.replace(tmp, target)
    finally:  # in this frame, not a context manager's __exit__: see new_partial
        try:
            remove_partial(tmp)
        finally:  # Ctrl-C or SIGTERM as the first began
            remove_partial(tmp)
    return FlashReport(info, given, method, written, verified)
