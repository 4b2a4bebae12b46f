"""Stage the overlay, the compiled model, this package and a first-boot setup onto a PYNQ image.

By default the image is not touched: it is copied (decompressed if it is .img.xz or .zip) to a new
file, `--out` or build/sdcard/<name>-dpupose.img, staged there and renamed into place once every file
has been read back and checked; on any failure the incomplete copy is removed. `--in-place` stages
into a raw image itself, after checking that everything fits.

On the ext4 root partition (debugfs): the files of `layout` under /home/xilinx/dpupose (owned by the
image's xilinx user), the systemd unit and its multi-user.target.wants link. On the FAT boot partition
(mtools): dpupose/manifest.json and dpupose/README.txt, readable from any PC.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dpupose.board import artifacts, extfs, firstboot, layout
from dpupose.board.fatfs import FatFs
from dpupose.board.flash import flash
from dpupose.board.images import ImageKind, open_image
from dpupose.board.manifest import Check, Manifest, build_manifest, check_files, parse_manifest
from dpupose.board.partitions import PynqLayout, find_pynq_partitions
from dpupose.board.tools import require_tool
from dpupose.board.wheel import build_wheel, check_wheel, setup_script, wheel_file
from dpupose.errors import ArtifactError, DpuposeError, ImageError, UsageError
from dpupose.fsio import make_dirs, new_partial, remove_partial, remove_stale_partials

log = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path("build/sdcard")
BOOT_MANIFEST = f"/{layout.BOOT_DIR}/manifest.json"
BOOT_README = f"/{layout.BOOT_DIR}/README.txt"
ROOT_OWNED = {layout.SETUP_SCRIPT, layout.FIRSTBOOT_SCRIPT, layout.FIRSTBOOT_UNIT}  # run by root
EXECUTABLE = {layout.SETUP_SCRIPT, layout.FIRSTBOOT_SCRIPT}
STAGE_TOOLS = ("debugfs", "mdir", "mmd", "mcopy", "mtype")  # e2fsprogs and mtools


def default_output(image: Path) -> Path:
    name = image.name
    for suffix in (".zip", ".xz", ".img"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return DEFAULT_OUT_DIR / f"{name}-dpupose.img"


@dataclass(frozen=True)
class StageReport:
    image: Path  # the image that now holds the staged files
    manifest: Manifest
    verdict: str  # fingerprint check result
    run_command: str = ""  # what runs the staged model on the board (after the first boot)
    backend_note: str | None = None  # why run_command does not use the DPU, if it does not


def stage(
    image: str | Path,
    overlay: str | Path,
    model: str | Path,
    *,
    out: str | Path | None = None,
    in_place: bool = False,
    wheel: str | Path | None = None,
    progress: bool = False,
) -> StageReport:
    for tool in STAGE_TOOLS:  # before any copy: a real image takes minutes to copy
        require_tool(tool)
    info = open_image(image)
    if in_place and out is not None:
        raise UsageError("give either --in-place or --out, not both")
    if in_place and info.kind is not ImageKind.RAW:
        raise UsageError(f"{info.path} is {info.kind.value}-compressed: stage into a copy with --out NEW.img")
    if info.kind is ImageKind.RAW:
        find_pynq_partitions(info.path)  # fail before copying anything if it is not a PYNQ image
    dest = None if in_place else Path(out) if out is not None else default_output(info.path)
    if dest is not None:
        _check_destination(dest, info)
    artifacts.precheck(Path(overlay), Path(model))  # before the wheel is built
    with tempfile.TemporaryDirectory(prefix="dpupose-stage-") as tmp_name:
        tmp = Path(tmp_name)
        wheel_path = wheel_file(Path(wheel)) if wheel else build_wheel(tmp / "wheel")
        check_wheel(wheel_path)
        payload = artifacts.collect(Path(overlay), Path(model), wheel_path, setup_script())
        files, manifest = _files_with_manifest(payload, tmp)
        done = {"run_command": layout.run_command(payload.backend), "backend_note": payload.backend_note}
        if in_place:
            plan = _prepare(info.path, files, tmp)  # raises before anything is written
            try:
                _write(info.path, plan, tmp)
            except ImageError as exc:
                raise ImageError(f"{exc}; {info.path} is now partly staged: stage it again, or restore it") from None
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM mid-write: the CLI says only "interrupted"
                print(
                    f"dpupose: warning: {info.path} may be partly staged: stage it again, or restore it",
                    file=sys.stderr,
                )
                raise
            return StageReport(info.path, manifest, payload.verdict, **done)
        assert dest is not None
        if dest.is_symlink():  # a link to an image staged before, or to none yet: write there, keep the link
            dest = Path(os.path.realpath(dest))
        make_dirs(dest.parent)
        # A killed stage's or flash's copy goes first: the disk may not hold two.
        remove_stale_partials(dest)
        # This stage's own: another stage into the same --out at once writes its own copy (the last
        # one to finish is the image), instead of both writing, renaming and removing one file.
        partial = new_partial(dest)
        try:
            try:
                flash(info.path, partial, use_bmaptool=False, progress=progress)
            except OSError as exc:  # name the file the user gave, not the temporary copy
                if exc.filename != str(partial):
                    raise
                raise type(exc)(exc.errno, exc.strerror, str(dest)) from None
            _write(partial, _prepare(partial, files, tmp), tmp)
            os.replace(partial, dest)
        except ImageError as exc:
            raise ImageError(f"{exc} ({dest} was not written; {info.path} is unchanged)") from None
        finally:  # in this frame, not a context manager's __exit__: see new_partial
            try:
                remove_partial(partial)
            finally:  # Ctrl-C or SIGTERM as the first began
                remove_partial(partial)
        return StageReport(dest, manifest, payload.verdict, **done)


def _check_destination(dest: Path, info) -> None:
    """--out may be new, or an image that an earlier `stage` wrote (replaced by the new copy); anything
    else there (the source image, a bitstream, someone's disk image) is refused before any work."""
    if not dest.exists():  # new; or a symbolic link that leads nowhere yet, written through as any output's
        return
    if dest.is_dir():
        raise UsageError(f"--out {dest} is a folder: give the path of the image file to write")
    if not dest.is_file():
        raise UsageError(
            f"--out {dest} is not a regular file (a device?): stage into an image file, then write it to a card "
            "with `dpupose sdcard flash`"
        )
    if os.path.samefile(dest, info.path):
        if info.kind is ImageKind.RAW:
            raise UsageError(f"--out {dest} is the image itself: use --in-place to stage into it")
        raise UsageError(f"--out {dest} is the image itself: give a new file name for the staged copy")
    if not _is_staged_image(dest):
        raise UsageError(
            f"--out {dest} exists and is not an image staged by dpupose, so it is not replaced: "
            "give a new file name, or move it away first"
        )


def _is_staged_image(path: Path) -> bool:
    try:
        parts = find_pynq_partitions(path)
        return extfs.DebugFs(path, parts.root).read(layout.MANIFEST) is not None
    except (DpuposeError, OSError):
        return False


def _files_with_manifest(payload: artifacts.Payload, tmp: Path) -> tuple[list[tuple[Path, PurePosixPath]], Manifest]:
    gen = tmp / "generated"
    gen.mkdir()
    (gen / "firstboot.sh").write_text(firstboot.firstboot_script(payload.wheel.name))
    (gen / "unit.service").write_text(firstboot.firstboot_unit())
    files = [
        *payload.files,
        (gen / "firstboot.sh", layout.FIRSTBOOT_SCRIPT),
        (gen / "unit.service", layout.FIRSTBOOT_UNIT),
    ]
    manifest = build_manifest(
        files,
        overlay_fingerprint=payload.overlay_fp,
        plan_fingerprint=payload.plan_fp,
        wheel=payload.wheel.name,
    )
    (gen / "manifest.json").write_text(manifest.to_json())
    (gen / "SHA256SUMS").write_text(manifest.sha256sums(layout.BOARD_ROOT))
    (gen / "README.txt").write_text(firstboot.boot_readme(payload.backend, payload.backend_note))
    files += [(gen / "manifest.json", layout.MANIFEST), (gen / "SHA256SUMS", layout.SHA256SUMS)]
    return files, manifest


def _previous_files(ext: extfs.DebugFs) -> set[PurePosixPath]:
    """Files a previous staging put on the image (from its manifest), to remove stale ones."""
    raw = ext.read(layout.MANIFEST)
    if raw is None:
        return set()
    try:
        return {PurePosixPath(e.path) for e in parse_manifest(raw, "the image").entries}
    except ArtifactError:
        return set()


def _check_space(
    target: Path,
    parts: PynqLayout,
    ext: extfs.DebugFs,
    fat: FatFs,
    files: list,
    tmp: Path,
    stale: list[PurePosixPath],
) -> None:
    """Refuse before any write if the files will not fit; the files they replace and the stale ones
    (removed first) count as free."""
    targets = [dest for _, dest in files]
    existing = ext.list_dirs(extfs.dirs_to_list([*targets, *stale]))
    new_dirs = [d for d in extfs.parents_of(targets) if d.name not in existing.get(str(d.parent), {})]
    fs = parts.root_fs
    need = extfs.blocks_needed([src.stat().st_size for src, _ in files], fs.block_size, len(new_dirs))
    freed = 0
    for path in {*targets, *stale}:
        entry = existing.get(str(path.parent), {}).get(path.name)
        if entry is not None and entry.mode & extfs.S_IFMT == extfs.S_IFREG:
            freed += (entry.size + fs.block_size - 1) // fs.block_size
    usable = max(fs.free_blocks - fs.reserved_blocks, 0) + freed
    if need > usable or len(files) + len(new_dirs) + 1 > fs.free_inodes:
        raise ImageError(
            f"the root partition of the image is too full: the staged files need about "
            f"{need * fs.block_size // 1024} KiB but {usable * fs.block_size // 1024} KiB are free "
            f"(outside the blocks reserved for root); use a smaller model or an image with more room"
        )
    boot_need = sum((tmp / "generated" / n).stat().st_size for n in ("manifest.json", "README.txt")) + 65536
    if fat.free_bytes() < boot_need:
        raise ImageError(f"the boot partition of the image is full: {boot_need} bytes needed for the manifest")
    _check_host_space(target, need * fs.block_size + boot_need)


def _check_host_space(target: Path, need: int) -> None:
    """A sparse image file takes room on its own disk as the blocks written into it fill its holes: refuse
    before the first write where that disk cannot take what staging writes (debugfs then stopped half way,
    blaming the image's root partition, and left the image partly staged)."""
    st = target.stat()
    if st.st_blocks * 512 >= st.st_size:  # every block of the image is on disk already
        return
    vfs = os.statvfs(target)
    free = vfs.f_bavail * vfs.f_frsize
    if free < need:
        raise ImageError(
            f"the disk holding {target.parent} has {free / 1e6:.1f} MB free, and staging writes up to "
            f"{need / 1e6:.1f} MB into the image, a sparse file whose empty parts take room on that disk as they "
            "are written: free some space there, or stage into a copy on another disk (--out)"
        )


@dataclass(frozen=True)
class _Plan:
    ext: extfs.DebugFs
    fat: FatFs
    commands: list[str]


def _prepare(target: Path, files: list[tuple[Path, PurePosixPath]], tmp: Path) -> _Plan:
    """Everything up to the first write: partitions, owner ids, free space, the debugfs batch."""
    parts = find_pynq_partitions(target)
    ext = extfs.DebugFs(target, parts.root)
    fat = FatFs(target, parts.boot)
    passwd = ext.read(PurePosixPath("/etc/passwd"))
    if passwd is None:
        log.warning("the image has no /etc/passwd; giving files to uid %d", layout.DEFAULT_UID)
    uid, gid = extfs.user_ids(passwd, layout.BOARD_USER, (layout.DEFAULT_UID, layout.DEFAULT_GID))
    ops = []
    for i, (src, dest) in enumerate(files):
        if any(c in str(src) for c in '"\n\r'):  # debugfs reads no such name: it gets a link of a plain one
            link = tmp / "sources" / str(i)
            link.parent.mkdir(exist_ok=True)
            os.symlink(os.path.abspath(src), link)
            src = link
        owner = (0, 0) if dest in ROOT_OWNED else (uid, gid)
        mode = 0o755 if dest in EXECUTABLE else 0o644
        ops.append(extfs.FileOp(src, dest, mode, *owner))
    links = [extfs.LinkOp(layout.FIRSTBOOT_WANTS, layout.FIRSTBOOT_UNIT)]
    new_paths = {op.path for op in ops} | {ln.path for ln in links}
    stale = sorted(_previous_files(ext) - new_paths)
    _check_space(target, parts, ext, fat, files, tmp, stale)
    targets = [*new_paths, *stale]
    existing = ext.list_dirs(extfs.dirs_to_list(targets))
    owners = {d: (uid, gid) for d in extfs.parents_of(targets) if d.is_relative_to(layout.BOARD_ROOT)}
    removals = [f"rm {extfs.quote(p)}" for p in stale if p.name in existing.get(str(p.parent), {})]
    return _Plan(ext, fat, removals + extfs.write_commands(ops, links, existing, owners))


def _write(target: Path, plan: _Plan, tmp: Path) -> None:
    """Run the batch, copy the manifest to the boot partition, read everything back."""
    plan.ext.apply(plan.commands)
    plan.fat.makedirs(f"/{layout.BOOT_DIR}")
    plan.fat.put(tmp / "generated" / "manifest.json", BOOT_MANIFEST)
    plan.fat.put(tmp / "generated" / "README.txt", BOOT_README)
    listing = list_staged(target)
    if listing is None:
        raise ImageError("the manifest did not read back from the root partition")
    bad = [f"{c.entry.path} {c.status}" for c in listing.checks if c.status != "ok"]
    if not listing.boot_copy_matches:
        bad.append(f"boot partition {BOOT_MANIFEST} differs")
    if not listing.enabled:
        bad.append(f"{layout.FIRSTBOOT_WANTS} is not a link")
    if bad:
        raise ImageError(f"staged files did not read back correctly: {', '.join(bad)}")


@dataclass(frozen=True)
class Listing:
    manifest: Manifest
    checks: list[Check]
    boot_copy_matches: bool  # the FAT copy of the manifest equals the root one
    enabled: bool  # the first-boot unit is linked into multi-user.target.wants


def list_staged(image: str | Path) -> Listing | None:
    """Read the manifest from a raw image and check every staged file; None if nothing is staged."""
    info = open_image(image)
    if info.kind is not ImageKind.RAW:
        raise UsageError(f"{info.path} is {info.kind.value}-compressed: list a raw .img (e.g. the staged copy)")
    parts = find_pynq_partitions(info.path)
    ext = extfs.DebugFs(info.path, parts.root)
    raw = ext.read(layout.MANIFEST)
    if raw is None:
        return None
    manifest = parse_manifest(raw, f"{info.path}:{layout.MANIFEST}")
    boot = FatFs(info.path, parts.boot).read(BOOT_MANIFEST)
    with tempfile.TemporaryDirectory(prefix="dpupose-ls-") as tmp_name:
        tmp = Path(tmp_name)
        tree = ext.dump_tree(layout.BOARD_ROOT, tmp / "root")
        copies: dict[str, Path] = {}
        for e in manifest.entries:
            path = PurePosixPath(e.path)
            if tree is not None and path.is_relative_to(layout.BOARD_ROOT):
                copies[e.path] = tree / path.relative_to(layout.BOARD_ROOT)
            else:
                data = ext.read(path)
                if data is not None:
                    local = tmp / "other" / str(len(copies))
                    local.parent.mkdir(exist_ok=True)
                    local.write_bytes(data)
                    copies[e.path] = local
        checks = check_files(manifest, copies.get)
    wants = ext.list_dirs([layout.FIRSTBOOT_WANTS.parent]).get(str(layout.FIRSTBOOT_WANTS.parent), {})
    link = wants.get(layout.FIRSTBOOT_WANTS.name)
    enabled = link is not None and link.mode & extfs.S_IFMT == extfs.S_IFLNK
    return Listing(manifest, checks, boot == raw, enabled)
