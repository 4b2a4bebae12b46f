"""Inputs the user supplies to the hardware build: the DPU TRD and the board files.

- The Vitis AI 2.5 DPU TRD (``DPU_TRD=``): the archive ``DPUCZDX8G.tar.gz`` or a folder it was extracted
  to. It must hold the DPUCZDX8G RTL (IP v4.0, the one Vitis AI 2.5 and pynq-dpu 2.5.1 use) and the Vitis
  kernel description. An archive is only listed here; `extract_trd` unpacks the parts the build needs.
- The board files (``BOARD_REPO=``): a checkout of the vendor's board repository (Avnet's bdf for the
  Ultra96-V2) holding the pinned version's ``board.xml``.

Every problem raises `UsageError` with what to fetch or set.

API:
    inspect_trd(path) -> TrdInfo              extract_trd(info, dest) -> Path (the TRD root folder)
    trd_unpacked(info, dest) -> whether the archive is unpacked whole in dest
    find_board_files(repo, pfm) -> BoardFiles
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dpupose.errors import UsageError
from dpupose.fsio import sha256_file, signals_deferred, what_is_at
from dpupose.hwbuild.platform import PlatformRecord

TRD_URL = "https://www.xilinx.com/bin/public/openDownload?filename=DPUCZDX8G.tar.gz"  # DPU-PYNQ 2.5's boards/Makefile
TRD_HINT = (
    f"download the Vitis AI 2.5 DPU TRD, DPUCZDX8G.tar.gz ({TRD_URL}, as DPU-PYNQ 2.5 does), and pass it with "
    "--trd /path/to/DPUCZDX8G.tar.gz or the folder it extracts to (DPU_TRD= with make, or in the environment)"
)
TRD_IP_VERSION = "4.0"  # DPUCZDX8G IP of Vitis AI 2.5; 4.1 is Vitis AI 3.0 (Vivado 2022.2)

# Files the kernel packaging and the link need, relative to the TRD root ("*" stays within a folder).
TRD_REQUIRED: tuple[str, ...] = (
    "dpu_ip/Vitis/dpu/hdl/*.v",
    "dpu_ip/Vitis/dpu/inc/*.vh",
    "dpu_ip/Vitis/dpu/xdc/timing_clocks.xdc",
    "dpu_ip/DPUCZDX8G_v*/hdl/DPUCZDX8G_*_dpu.sv",
    "dpu_ip/DPUCZDX8G_v*/inc/arch_para.vh",
    "dpu_ip/DPUCZDX8G_v*/inc/function.vh",
    "dpu_ip/DPUCZDX8G_v*/ttcl/*_json.ttcl",
    "prj/Vitis/kernel_xml/dpu/kernel.xml",
)
POSTLINK_TCL = "prj/Vitis/syslink/strip_interconnects.tcl"  # removes interconnects v++ would insert
TRD_PARTS = ("dpu_ip/", "prj/Vitis/")  # what extract_trd unpacks

# A TRD layout with one file per required pattern (used to check kernel.tcl when no TRD is given).
TRD_SKELETON: tuple[str, ...] = (
    "dpu_ip/Vitis/dpu/hdl/DPUCZDX8G.v",
    "dpu_ip/Vitis/dpu/inc/arch_def.vh",
    "dpu_ip/Vitis/dpu/xdc/timing_clocks.xdc",
    "dpu_ip/DPUCZDX8G_v4_0_0/hdl/DPUCZDX8G_v4_0_0_vl_dpu.sv",
    "dpu_ip/DPUCZDX8G_v4_0_0/inc/arch_para.vh",
    "dpu_ip/DPUCZDX8G_v4_0_0/inc/function.vh",
    "dpu_ip/DPUCZDX8G_v4_0_0/ttcl/fingerprint_json.ttcl",
    "prj/Vitis/kernel_xml/dpu/kernel.xml",
    POSTLINK_TCL,
)


def glob_regex(glob: str) -> re.Pattern[str]:
    return re.compile("".join("[^/]*" if c == "*" else re.escape(c) for c in glob) + r"\Z")


@dataclass(frozen=True)
class TrdInfo:
    path: Path  # what the user gave
    archive: bool  # a .tar.gz (else a folder)
    prefix: str  # folder inside the archive/folder that holds dpu_ip/ ("" if at the top), with "/"
    names: tuple[str, ...]  # files relative to the TRD root
    ip_version: str  # e.g. "4.0.0" from dpu_ip/DPUCZDX8G_v4_0_0

    @property
    def has_postlink(self) -> bool:
        return POSTLINK_TCL in self.names

    def digest(self) -> str:
        """sha256 of the archive, or of the folder's TRD files (names and contents)."""
        if self.archive:
            return sha256_file(self.path)
        h = hashlib.sha256()
        root = self.path / self.prefix
        for name in self.names:
            if name.startswith(TRD_PARTS):
                h.update(name.encode() + b"\0" + (root / name).read_bytes())
        return h.hexdigest()


def _layout(path: Path, names: list[str], archive: bool) -> TrdInfo:
    tops = sorted({m.group(1) for n in names if (m := re.match(r"((?:[^/]+/)?)dpu_ip/", n))})
    if len(tops) != 1:
        what = "no dpu_ip/ folder" if not tops else f"several dpu_ip/ folders ({', '.join(tops)})"
        raise UsageError(f"DPU_TRD={path}: {what}; this is not the DPUCZDX8G TRD: {TRD_HINT}")
    prefix = tops[0]
    rel = tuple(sorted(n[len(prefix) :] for n in names if n.startswith(prefix)))
    missing = [g for g in TRD_REQUIRED if not any(glob_regex(g).match(n) for n in rel)]
    if missing:
        raise UsageError(f"DPU_TRD={path} lacks {', '.join(missing)}: {TRD_HINT}")
    versions = sorted({m.group(1) for n in rel if (m := re.match(r"dpu_ip/DPUCZDX8G_v(\d+_\d+_\d+)/", n))})
    if len(versions) != 1:
        raise UsageError(f"DPU_TRD={path}: expected one dpu_ip/DPUCZDX8G_v* IP folder, found {versions}")
    version = versions[0].replace("_", ".")
    if not version.startswith(TRD_IP_VERSION + "."):
        raise UsageError(
            f"DPU_TRD={path} holds DPUCZDX8G IP v{version}; this flow (Vivado 2022.1, pynq-dpu 2.5.1) "
            f"needs IP v{TRD_IP_VERSION} from the Vitis AI 2.5 TRD: {TRD_HINT}"
        )
    return TrdInfo(path, archive, prefix, rel, version)


def inspect_trd(path: str | Path | None) -> TrdInfo:
    """Check the TRD archive or folder without unpacking it."""
    if not path:
        raise UsageError(f"DPU_TRD is not set: {TRD_HINT}")
    path = Path(path).expanduser()
    if path.is_dir():
        names = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(path).as_posix()
            names += [f"{rel}/{f}" if rel != "." else f for f in filenames]
        return _layout(path, names, archive=False)
    if not path.is_file():
        what = what_is_at(path)
        raise UsageError(
            f"DPU_TRD={path}: no such file or folder: {TRD_HINT}"
            if what == "nothing"
            else f"DPU_TRD={path} is {what}, not a file or folder: {TRD_HINT}"
        )
    try:
        with tarfile.open(path, "r:*") as tar:
            names = [m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"DPU_TRD={path} is not a readable tar archive ({exc}): {TRD_HINT}") from None
    return _layout(path, names, archive=True)


def trd_unpacked(info: TrdInfo, dest: Path) -> bool:
    """Whether the archive `info` is unpacked whole in `dest` (extract_trd's marker names its sha256)."""
    marker = dest / ".complete"
    return marker.is_file() and marker.read_text() == info.digest()


def extract_trd(info: TrdInfo, dest: Path) -> Path:
    """The TRD root folder: the user's folder as is, or the archive's dpu_ip/ and prj/Vitis/ unpacked
    into `dest` (atomically: a half-unpacked tree is never left at `dest`)."""
    if not info.archive:
        return info.path / info.prefix
    if trd_unpacked(info, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with signals_deferred():  # Ctrl-C inside mkdtemp, after it made the folder, would leave it behind
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        with tarfile.open(info.path, "r:*") as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("./")
                rel = name[len(info.prefix) :] if name.startswith(info.prefix) else None
                if rel is None or not rel.startswith(TRD_PARTS) or not (member.isfile() or member.isdir()):
                    continue
                if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
                    raise UsageError(f"DPU_TRD={info.path}: unsafe member {member.name!r}; not extracting")
                target = tmp / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
        (tmp / ".complete").write_text(info.digest())
        # A dest that is a link (the TRD unpacked before, moved to another disk and linked back) is replaced by
        # the new TRD; the folder it points to is not the build's to empty, and stays as it was.
        if dest.is_symlink():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
    return dest


@dataclass(frozen=True)
class BoardFiles:
    board_xml: Path
    vendor: str
    name: str
    version: str


def _read_board_xml(path: Path) -> BoardFiles | None:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    if root.tag != "board":
        return None
    version = (root.findtext("file_version") or "").strip()
    return BoardFiles(path, root.get("vendor", ""), root.get("name", ""), version)


def find_board_files(repo: str | Path | None, pfm: PlatformRecord) -> BoardFiles:
    """The pinned board.xml in the user's board repository (searched up to five folders deep)."""
    want = f"{pfm.board_files_name} {pfm.board_files_version} (vendor {pfm.board_files_vendor})"
    hint = (
        f"get them from {pfm.board_files_source} and pass the checkout with --board-repo /path/to/it "
        "(BOARD_REPO= with make, or in the environment)"
    )
    if not repo:
        raise UsageError(f"BOARD_REPO is not set: the build needs the {want} board files; {hint}")
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        what = what_is_at(repo)
        raise UsageError(
            f"BOARD_REPO={repo}: no such folder; {hint}"
            if what == "nothing"
            else f"BOARD_REPO={repo} is {what}, not a folder; {hint}"
        )
    found: list[BoardFiles] = []
    for dirpath, dirnames, filenames in os.walk(repo):
        depth = len(Path(dirpath).relative_to(repo).parts)
        dirnames[:] = [] if depth >= 5 else [d for d in dirnames if not d.startswith(".")]
        if "board.xml" in filenames:
            info = _read_board_xml(Path(dirpath) / "board.xml")
            if info is not None and info.name.lower() == pfm.board_files_name.lower():
                found.append(info)
    exact = [
        f for f in found if f.version == pfm.board_files_version and f.vendor.lower() == pfm.board_files_vendor.lower()
    ]
    if exact:
        return sorted(exact, key=lambda f: str(f.board_xml))[0]
    if found:
        have = ", ".join(sorted(f"{f.version} (vendor {f.vendor}, {f.board_xml})" for f in found))
        raise UsageError(
            f"BOARD_REPO={repo} has {pfm.board_files_name} board files {have} but not the pinned {want}: "
            f"the board part in the board record names that version; {hint}"
        )
    raise UsageError(f"BOARD_REPO={repo} holds no {pfm.board_files_name} board.xml; {hint}")
