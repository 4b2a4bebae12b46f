"""Fixtures for the SD card and deployment tests: a small PYNQ-like image built with the real tools
(sfdisk, mkfs.vfat, mkfs.ext4), overlay and model folders, and a real wheel of this package."""

from __future__ import annotations

import hashlib
import json
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
IMAGE_TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mdir", "mtype", "mmd", "debugfs", "e2fsck")
MISSING = [t for t in IMAGE_TOOLS if shutil.which(t) is None]
needs_image_tools = pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs {', '.join(MISSING)} (apt-get install fdisk dosfstools mtools e2fsprogs; .ci/run does)",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def debugfs_cat(image: Path, offset: int, path: str) -> bytes | None:
    """Read a file from the ext4 partition directly with debugfs (independent of dpupose.board)."""
    proc = subprocess.run(
        ["debugfs", "-R", f"cat {path}", f"{image}?offset={offset}"], capture_output=True, check=True
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


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> Path:
    if MISSING:
        pytest.skip(f"needs {', '.join(MISSING)}")
    folder = tmp_path_factory.mktemp("image")
    passwd = "root:x:0:0:root:/root:/bin/bash\nxilinx:x:1000:1000:xilinx:/home/xilinx:/bin/bash\n"
    return build_image(folder / "pynq.img", {"etc/passwd": passwd, "etc/hostname": "pynq\n"})


@pytest.fixture
def image(base_image: Path, tmp_path: Path) -> Path:
    """A private copy of the base image (sparse)."""
    dest = tmp_path / "pynq.img"
    run("cp", "--sparse=always", str(base_image), str(dest))
    return dest


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    folder = tmp_path / "overlay"
    folder.mkdir()
    (folder / "dpu.bit").write_bytes(os.urandom(300_000))
    (folder / "dpu.hwh").write_text("<HWH>dpu</HWH>\n" * 200)
    (folder / "dpu.xclbin").write_bytes(os.urandom(200_000))
    (folder / "arch.json").write_text(json.dumps({"fingerprint": FINGERPRINT}))
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "cpu").mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"version": 1, "fingerprint": FINGERPRINT, "subgraphs": []}))
    (folder / "dpu_part.xmodel").write_bytes(os.urandom(150_000))
    (folder / "cpu" / "head part.onnx").write_bytes(os.urandom(50_000))  # a space in the name
    return folder


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A real wheel of this package, built once per session."""
    from dpupose.board.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def lsblk_fixture():
    def load(name: str) -> str:
        return (DATA / "lsblk" / name).read_text()

    return load


@pytest.fixture
def cli(monkeypatch):
    """Run `dpupose` in-process with only this area's commands registered; returns the exit code."""
    import dpupose.cli

    monkeypatch.setattr(dpupose.cli, "COMMAND_MODULES", ("sdcard", "deploy"))
    return dpupose.cli.main


@pytest.fixture(scope="session")
def base_xz(base_image: Path) -> bytes:
    """The base image, xz-compressed (once per session: compression is the slow part)."""
    import lzma

    return lzma.compress(base_image.read_bytes(), preset=0)
