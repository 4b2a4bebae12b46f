"""Helpers for the SD card tests: a small PYNQ-like image built with the real tools (sfdisk, mkfs.vfat,
mkfs.ext4), and independent ways to read it back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
MiB = 1024 * 1024
FAT_START = 1 * MiB
FAT_SIZE = 32 * MiB
ROOT_START = FAT_START + FAT_SIZE
ROOT_SIZE = 24 * MiB
IMAGE_SIZE = ROOT_START + ROOT_SIZE + MiB
FINGERPRINT = "0x101000016010407"
OLD_CARD = b"old card".ljust(510, b"\0") + b"\x55\xaa"  # an earlier image's first sector: an MBR
IMAGE_TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mdir", "mtype", "mmd", "debugfs", "e2fsck", "dumpe2fs")
# Debian installs sfdisk, mkfs.*, e2fsck, dumpe2fs and debugfs in /usr/sbin, which only root's PATH holds by
# default: for an ordinary user every image test was skipped as if they were not installed. Looked for on PATH,
# then there (as dpupose's own tool lookup does).
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def tool(name: str) -> str:
    """The absolute path of the tool `name`, on PATH or in a system folder (its bare name where it is in neither:
    the tests that need it are skipped, and a run of it fails saying which)."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS)) or name


MISSING = [t for t in IMAGE_TOOLS if tool(t) == t]
needs_image_tools = pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs {', '.join(MISSING)} (apt-get install fdisk dosfstools mtools e2fsprogs; .ci/run does)",
)


def xmodel_bytes(name: str, size: int = 0) -> bytes:
    """An .xmodel XIR's protobuf parse takes (serial_v2.Graph with only its graph_name, field 1, a string), of
    `size` bytes where given: what stage and deploy check of a plan's compiled .xmodel is that it parses."""
    text = name.encode()
    if size:
        text = text.ljust(size - 4, b"x")  # a tag byte and a 3-byte length below 2**21
    length, n = b"", len(text)
    while n >= 0x80:
        length, n = length + bytes([n & 0x7F | 0x80]), n >> 7
    return b"\x0a" + length + bytes([n]) + text


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([tool(argv[0]), *argv[1:]], check=True, capture_output=True, **kw)


def debugfs_cat(image: Path, offset: int, path: str) -> bytes | None:
    """Read a file from the ext4 partition directly with debugfs (independent of dpupose.board)."""
    proc = subprocess.run(
        [tool("debugfs"), "-R", f"cat {path}", f"{image}?offset={offset}"], capture_output=True, check=True
    )
    return None if b"not found" in proc.stderr else proc.stdout


def build_image(path: Path, root_files: dict[str, str]) -> Path:
    """A sparse two-partition image: FAT16 'PYNQ' (32 MiB, with BOOT.BIN) + ext4 'root' (24 MiB)."""
    with path.open("wb") as f:
        f.truncate(IMAGE_SIZE)
    table = (
        "label: dos\n"
        f"start={FAT_START // 512}, size={FAT_SIZE // 512}, type=c, bootable\n"
        f"start={ROOT_START // 512}, size={ROOT_SIZE // 512}, type=83\n"
    )
    run("sfdisk", "-q", str(path), input=table.encode())
    run("mkfs.vfat", "-n", "PYNQ", "--offset", str(FAT_START // 512), str(path), str(FAT_SIZE // 1024))
    boot = path.parent / "BOOT.BIN"
    boot.write_bytes(b"\x00boot" * 1000)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    run("mcopy", "-i", f"{path}@@{FAT_START}", str(boot), "::/BOOT.BIN", env=env)
    rootdir = path.parent / "rootfs"
    for rel, text in root_files.items():
        p = rootdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for d in ("home/xilinx", "etc/systemd/system/multi-user.target.wants"):
        (rootdir / d).mkdir(parents=True, exist_ok=True)
    run(
        "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root", "-d", str(rootdir),
        "-E", f"offset={ROOT_START}", str(path), str(ROOT_SIZE // 1024) + "k",
    )  # fmt: skip
    return path
