"""What a target block device is, and whether writing an image to it would be unsafe.

`inspect_device` parses the JSON of `lsblk --json -b -o <LSBLK_COLUMNS> DEVICE` (util-linux 2.37+).
Older releases (Ubuntu 20.04 has 2.34) know no MOUNTPOINTS column (and before 2.33 no PATH): lsblk
refuses the whole command, so it is asked again for LSBLK_COLUMNS_OLD, with MOUNTPOINT; they print
numbers and flags as strings and `mountpoint` instead of `mountpoints`, both accepted. It is a pure
function of that JSON, so the refusal rules are tested on recorded output, never on a real disk.

A device is refused when it
- is a partition or not a disk at all (never overridable: give the whole card),
- is read-only (never overridable),
- holds a mounted file system or active swap anywhere in its tree (partitions, LVM, crypt),
- is the system disk: its tree holds `/`, or the device numbers of `/` (`os.stat("/").st_dev`),
- is not removable: lsblk's RM and HOTPLUG flags are both off, it is not on USB and it is not an
  MMC/SD slot (built-in SD readers report RM=0, so `mmcblk*` and TRAN=mmc count as removable), or it
  is an eMMC chip (also `mmcblk*`, but soldered in: the kernel's /sys/block/NAME/device/type says
  MMC where an SD card says SD);
the last three unless forced.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dpupose.errors import DeviceError
from dpupose.fsio import loads_json

LSBLK_COLUMNS = "NAME,PATH,PKNAME,SIZE,MODEL,RM,HOTPLUG,TRAN,TYPE,RO,MOUNTPOINTS,FSTYPE,LABEL,MAJ:MIN"
LSBLK_COLUMNS_OLD = "NAME,PKNAME,SIZE,MODEL,RM,HOTPLUG,TRAN,TYPE,RO,MOUNTPOINT,FSTYPE,LABEL,MAJ:MIN"  # 2.27+
# PYNQ needs the root file system to grow on first boot: cards of 16 GB or more.
RECOMMENDED_CARD_BYTES = 15_000_000_000  # a "16 GB" card holds a little under 16e9 bytes


def lsblk_argv(device: str, old: bool = False) -> list[str]:
    return ["lsblk", "--json", "-b", "-o", LSBLK_COLUMNS_OLD if old else LSBLK_COLUMNS, device]


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip() in ("1", "true")
    return bool(value)


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(value)


def _mounts(node: dict[str, Any]) -> list[str]:
    points = node.get("mountpoints", [node.get("mountpoint")])
    return [p for p in (points or []) if p]


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    path: str
    size: int
    type: str  # part, lvm, crypt...
    fstype: str | None
    label: str | None
    mountpoints: tuple[str, ...]


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    path: str
    size: int  # bytes
    model: str
    type: str  # disk, part, loop, rom...
    parent: str  # lsblk PKNAME: the disk a partition belongs to ("" for a disk)
    removable: bool
    transport: str
    read_only: bool
    devno: str  # "major:minor"
    mountpoints: tuple[str, ...]  # of the device itself
    children: tuple[PartitionInfo, ...] = field(default=())
    child_devnos: tuple[str, ...] = field(default=())

    def all_mounts(self) -> list[str]:
        return [*self.mountpoints, *(m for c in self.children for m in c.mountpoints)]

    def holds_root(self, root_devno: str | None = None) -> bool:
        if "/" in self.all_mounts():
            return True
        return root_devno is not None and root_devno in (self.devno, *self.child_devnos)


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in node.get("children") or []:
        yield child
        yield from _walk(child)


def mmc_card_type(name: str, sys_root: str = "/sys") -> str | None:
    """The kernel's type of the card behind an mmcblk disk ("SD", "MMC" for eMMC, ...), or None."""
    try:
        with open(os.path.join(sys_root, "block", name, "device", "type")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def inspect_device(lsblk_json: str | dict[str, Any], device: str, mmc_type: str | None = None) -> DeviceInfo:
    """The DeviceInfo of `device` from lsblk's JSON output; DeviceError if lsblk did not list it.
    mmc_type: `mmc_card_type` of an mmcblk disk ("MMC", an eMMC chip, is not removable)."""
    data = loads_json(lsblk_json) if isinstance(lsblk_json, str) else lsblk_json
    nodes = data.get("blockdevices") or []
    wanted = os.path.basename(device)
    node = next((n for n in nodes if n.get("path") == device or n.get("name") == wanted), None)
    if node is None:
        node = nodes[0] if len(nodes) == 1 else None
    if node is None:
        raise DeviceError(f"lsblk does not list {device}: is it a block device?")
    name = str(node.get("name") or wanted)
    transport = str(node.get("tran") or "")
    if mmc_type == "MMC":
        transport, removable = "eMMC", False
    else:
        removable = (
            _flag(node.get("rm"))
            or _flag(node.get("hotplug"))
            or transport in ("usb", "mmc")
            or name.startswith("mmcblk")
        )
    children = tuple(
        PartitionInfo(
            name=str(c.get("name")),
            path=str(c.get("path") or f"/dev/{c.get('name')}"),
            size=_int(c.get("size")),
            type=str(c.get("type") or ""),
            fstype=c.get("fstype"),
            label=c.get("label"),
            mountpoints=tuple(_mounts(c)),
        )
        for c in _walk(node)
    )
    return DeviceInfo(
        name=name,
        path=str(node.get("path") or device),
        size=_int(node.get("size")),
        model=" ".join(str(node.get("model") or "").split()),
        type=str(node.get("type") or ""),
        parent=str(node.get("pkname") or ""),
        removable=removable,
        transport=transport,
        read_only=_flag(node.get("ro")),
        devno=str(node.get("maj:min") or ""),
        mountpoints=tuple(_mounts(node)),
        children=children,
        child_devnos=tuple(str(c.get("maj:min")) for c in _walk(node) if c.get("maj:min")),
    )


@dataclass(frozen=True)
class Refusal:
    code: str  # "not-disk", "read-only", "mounted", "system", "non-removable"
    message: str
    overridable: bool


def refusals(info: DeviceInfo, root_devno: str | None = None) -> list[Refusal]:
    """Every reason not to write to this device (empty: safe to ask the user)."""
    found: list[Refusal] = []
    if info.type == "part":
        whole = f"/dev/{info.parent}" if info.parent else "the whole card"
        found.append(Refusal("not-disk", f"{info.path} is a partition: write to {whole} instead", overridable=False))
    elif info.type not in ("disk", "loop"):
        found.append(
            Refusal("not-disk", f"{info.path} is a {info.type or 'device'} device, not a disk", overridable=False)
        )
    if info.read_only:
        found.append(
            Refusal("read-only", f"{info.path} is read-only (check the card's lock switch)", overridable=False)
        )
    if info.holds_root(root_devno):
        found.append(Refusal("system", f"{info.path} is the system disk: it holds /", overridable=True))
    mounts = info.all_mounts()
    if mounts:
        found.append(
            Refusal(
                "mounted",
                f"{info.path} has mounted file systems ({', '.join(mounts)}): unmount them first "
                f"(e.g. `udisksctl unmount -b PARTITION` or `sudo umount PARTITION`)",
                overridable=True,
            )
        )
    if not info.removable:
        found.append(
            Refusal(
                "non-removable",
                f"{info.path} is not a removable disk ({info.transport or 'internal'}); "
                "SD cards sit in USB readers or MMC slots",
                overridable=True,
            )
        )
    return found


def check_device(info: DeviceInfo, image_size: int, *, force: bool, root_devno: str | None = None) -> None:
    """Raise DeviceError for any refusal not overridden by `force`, or an image that does not fit."""
    blocking = [r for r in refusals(info, root_devno) if not (force and r.overridable)]
    if blocking:
        hint = (
            ""
            if any(not r.overridable for r in blocking)
            else f" (--force overrides {'this' if len(blocking) == 1 else 'these'}, and every other check of "
            f"this kind: use it only when you are sure {info.path} is the card)"
        )
        raise DeviceError("refusing to write: " + "; ".join(r.message for r in blocking) + hint)
    if image_size > info.size:
        raise DeviceError(
            f"the image ({human_bytes(image_size)}, {image_size} bytes) is larger than {info.path} "
            f"({human_bytes(info.size)}, {info.size} bytes): use a larger card"
        )


def root_devno() -> str | None:
    """major:minor of the file system holding `/`."""
    try:
        dev = os.stat("/").st_dev
    except OSError:
        return None
    return f"{os.major(dev)}:{os.minor(dev)}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def describe(info: DeviceInfo, root_devno: str | None = None) -> str:
    """What the confirmation prompt shows: size, model, transport, partitions and the warnings."""
    kind = ", ".join(x for x in (info.transport, "removable" if info.removable else "fixed") if x)
    lines = [f"{info.path}: {human_bytes(info.size)} ({info.size} bytes), {info.model or 'unknown model'}, {kind}"]
    for c in info.children:
        mounted = f", mounted at {', '.join(c.mountpoints)}" if c.mountpoints else ""
        label = f" '{c.label}'" if c.label else ""
        lines.append(f"  {c.name}: {human_bytes(c.size)} {c.fstype or 'no file system'}{label}{mounted}")
    if not info.children:
        lines.append("  no partitions")
    for r in refusals(info, root_devno):
        lines.append(f"  WARNING: {r.message}")
    if info.size < RECOMMENDED_CARD_BYTES:
        lines.append(f"  note: PYNQ wants a card of 16 GB or more; this one holds {info.size / 1e9:.1f} GB")
    return "\n".join(lines)
