"""The MBR partition table of an image file and the superblocks of its FAT and ext4 partitions.

Everything is read with plain file reads (no root, no loop devices, no mounting). The sizes recorded in
each file system are checked against its partition, because mtools and debugfs trust the file system's
own size: a file system claiming more than its partition could otherwise write past it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from dpupose.errors import ImageError

SECTOR = 512
FAT_TYPE_IDS = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
LINUX_TYPE_ID = 0x83
GPT_PROTECTIVE_ID = 0xEE
EXT_MAGIC = 0xEF53
EXT4_INCOMPAT_RECOVER = 0x0004  # journal needs replaying: the file system was not unmounted cleanly
EXT4_INCOMPAT_64BIT = 0x0080


@dataclass(frozen=True)
class Partition:
    number: int  # 1..4 (primary partitions)
    type_id: int  # MBR partition type byte
    bootable: bool
    offset: int  # bytes from the start of the image
    size: int  # bytes

    @property
    def end(self) -> int:
        return self.offset + self.size


def read_mbr(image: Path, gpt_ok: bool = False) -> list[Partition]:
    """Primary partitions of an MBR ("dos") partition table, in table order (with gpt_ok, none for a GPT
    disk's protective MBR instead of an ImageError)."""
    with image.open("rb") as f:
        mbr = f.read(SECTOR)
        image_size = f.seek(0, 2)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise ImageError(f"{image} has no MBR partition table: is it a PYNQ SD card image?")
    parts = []
    for i in range(4):
        entry = mbr[446 + 16 * i : 446 + 16 * (i + 1)]
        status, type_id = entry[0], entry[4]
        lba, sectors = struct.unpack_from("<II", entry, 8)
        if type_id == 0 or sectors == 0:
            continue
        if type_id == GPT_PROTECTIVE_ID:
            if gpt_ok:
                return []
            raise ImageError(f"{image} has a GPT partition table; PYNQ images use MBR")
        part = Partition(i + 1, type_id, status == 0x80, lba * SECTOR, sectors * SECTOR)
        if part.end > image_size:
            raise ImageError(
                f"{image} is truncated: partition {part.number} ends at byte {part.end} but the file has "
                f"{image_size} bytes; download the image again"
            )
        parts.append(part)
    return parts


@dataclass(frozen=True)
class FatInfo:
    label: str
    size: int  # bytes the file system spans


def read_fat(image: Path, part: Partition) -> FatInfo | None:
    """The FAT boot sector of a partition, or None if it holds no FAT file system."""
    with image.open("rb") as f:
        f.seek(part.offset)
        bs = f.read(SECTOR)
    if len(bs) < SECTOR or bs[510:512] != b"\x55\xaa":
        return None
    bytes_per_sector = struct.unpack_from("<H", bs, 0x0B)[0]
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        return None
    total16, sectors_per_fat16 = struct.unpack_from("<H", bs, 0x13)[0], struct.unpack_from("<H", bs, 0x16)[0]
    total = total16 or struct.unpack_from("<I", bs, 0x20)[0]
    # FAT32 keeps its extended BPB (signature 0x29, then serial, then label) further down.
    sig_at, label_at = (0x42, 0x47) if sectors_per_fat16 == 0 else (0x26, 0x2B)
    label = bs[label_at : label_at + 11].decode("ascii", "replace").strip() if bs[sig_at] == 0x29 else ""
    return FatInfo(label=label, size=total * bytes_per_sector)


@dataclass(frozen=True)
class ExtInfo:
    label: str
    block_size: int
    blocks: int
    reserved_blocks: int
    free_blocks: int
    free_inodes: int
    needs_recovery: bool

    @property
    def size(self) -> int:
        return self.blocks * self.block_size


def read_ext(image: Path, part: Partition) -> ExtInfo | None:
    """The ext2/3/4 superblock of a partition (1024 bytes at offset 1024), or None if there is none."""
    with image.open("rb") as f:
        f.seek(part.offset + 1024)
        sb = f.read(1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    blocks_lo, reserved_lo, free_lo, free_inodes = struct.unpack_from("<IIII", sb, 0x04)
    log_block = struct.unpack_from("<I", sb, 0x18)[0]
    incompat = struct.unpack_from("<I", sb, 0x60)[0]
    hi = (0, 0, 0)
    if incompat & EXT4_INCOMPAT_64BIT:
        hi = struct.unpack_from("<III", sb, 0x150)
    return ExtInfo(
        label=sb[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace"),
        block_size=1024 << log_block,
        blocks=blocks_lo | hi[0] << 32,
        reserved_blocks=reserved_lo | hi[1] << 32,
        free_blocks=free_lo | hi[2] << 32,
        free_inodes=free_inodes,
        needs_recovery=bool(incompat & EXT4_INCOMPAT_RECOVER),
    )


@dataclass(frozen=True)
class PynqLayout:
    boot: Partition  # FAT, label PYNQ
    boot_fs: FatInfo
    root: Partition  # ext4
    root_fs: ExtInfo


def find_pynq_partitions(image: Path) -> PynqLayout:
    """The FAT boot partition (preferably labelled PYNQ) and the ext4 root partition of a PYNQ image."""
    parts = read_mbr(image)
    fats = [(p, fs) for p in parts if p.type_id in FAT_TYPE_IDS and (fs := read_fat(image, p))]
    exts = [(p, fs) for p in parts if p.type_id == LINUX_TYPE_ID and (fs := read_ext(image, p))]
    if not fats:
        raise ImageError(f"{image} has no FAT boot partition: is it a PYNQ image?")
    if not exts:
        raise ImageError(f"{image} has no ext4 root partition: is it a PYNQ image?")
    boot, boot_fs = next(((p, fs) for p, fs in fats if fs.label.upper() == "PYNQ"), fats[0])
    root, root_fs = exts[0]
    for p, size, what in ((boot, boot_fs.size, "FAT"), (root, root_fs.size, "ext4")):
        if size > p.size:
            raise ImageError(
                f"the {what} file system in partition {p.number} of {image} claims {size} bytes but the "
                f"partition has {p.size}: the image is damaged"
            )
    if root_fs.needs_recovery:
        raise ImageError(
            f"the root file system of {image} was not unmounted cleanly (its journal needs replaying): "
            "repair it first, e.g. with e2fsck on a copy of the partition"
        )
    return PynqLayout(boot, boot_fs, root, root_fs)
