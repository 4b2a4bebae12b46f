"""`dpupose sdcard`: write a PYNQ image to an SD card, stage the board files onto an image, list them.

dpupose sdcard flash IMAGE --device /dev/sdX [--yes] [--force] [--bmap FILE | --no-bmaptool]
dpupose sdcard verify IMAGE --device /dev/sdX
dpupose sdcard stage IMAGE --overlay DIR --model DIR [--out NEW.img | --in-place] [--wheel FILE]
dpupose sdcard ls IMAGE
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from dpupose.commands.argtypes import given, output_file, payload_options
from dpupose.fsio import same_file

HELP = "write a PYNQ image to an SD card; stage the overlay, model and package onto an image"
IMAGE = given("the PYNQ image (.img, .img.xz or .zip)")
DEVICE = given("the card (/dev/sdX, /dev/mmcblkN) or an image file")


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("sdcard", help=HELP, description=HELP)
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="sdcard_command", metavar="ACTION")

    def progress_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bar with throughput on stderr (default: when stderr is a terminal)",
        )

    p = sub.add_parser(
        "flash",
        help="write an image (.img, .img.xz, .zip) to a card or a file and verify it",
        description="Write an image to an SD card (or a regular file) and read it back to verify. "
        "Refuses mounted, system and non-removable disks unless --force; asks before writing unless --yes.",
    )
    p.add_argument("image", type=IMAGE, help="PYNQ image: .img, .img.xz or .zip holding one .img")
    p.add_argument("--device", type=DEVICE, required=True, help="the card (/dev/sdX, /dev/mmcblkN) or a file to write")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (for scripts)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write even to a mounted, system or non-removable disk, or over a file that is not a disk image",
    )
    p.add_argument(
        "--bmap",
        type=given("a block map file (.bmap), or --no-bmaptool"),
        help="block map for bmaptool (default: one beside the image, IMAGE.bmap or its name without the "
        "compression suffix or .img + .bmap)",
    )
    p.add_argument(
        "--no-bmaptool",
        action="store_true",
        help="use the built-in streaming copy even if bmaptool is installed",
    )
    progress_flags(p)
    p.set_defaults(func=run_flash)

    p = sub.add_parser(
        "verify",
        help="compare a card (or file) with an image, byte by byte",
        description="Read the card (or file) back and compare it with the image over the image's size. For a "
        "card that has not booted since it was written: PYNQ's first boot grows the root partition. Exit 1 if they "
        "differ.",
    )
    p.add_argument(
        "image", type=IMAGE, help="the image the card was written from: .img, .img.xz or .zip holding one .img"
    )
    p.add_argument(
        "--device", type=DEVICE, required=True, help="the card (/dev/sdX, /dev/mmcblkN) or a file to compare"
    )
    progress_flags(p)
    p.set_defaults(func=run_verify)

    p = sub.add_parser(
        "stage",
        help="put overlay, model, wheel and first-boot setup onto an image (into a copy by default)",
        description="Stage dpu.bit/.hwh/.xclbin, the compiled model, the dpupose wheel and a first-boot "
        "setup onto a PYNQ image without root. The image is copied first unless --in-place.",
    )
    p.add_argument("image", type=IMAGE, help="PYNQ image (.img; .img.xz and .zip are decompressed into the copy)")
    payload_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--out", type=output_file, help="the staged copy to write (default build/sdcard/<name>-dpupose.img)"
    )
    where.add_argument("--in-place", action="store_true", help="stage into IMAGE itself (raw .img only)")
    p.add_argument(
        "--wheel",
        type=given("a dpupose wheel (.whl)"),
        help="use this dpupose wheel instead of building one from the source tree",
    )
    progress_flags(p)
    p.set_defaults(func=run_stage)

    p = sub.add_parser(
        "ls",
        help="list what is staged on an image and check every file's SHA-256 (exit 1 if nothing is staged or a "
        "file changed)",
    )
    p.add_argument("image", type=given("a raw .img"), help="a raw .img")
    p.set_defaults(func=run_ls)


def _confirm(text: str) -> bool:
    from dpupose.errors import UsageError

    print(text, file=sys.stderr)
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal, so there is no one to confirm: pass --yes")
    try:
        answer = input("Type 'yes' to write: ")
    except EOFError:  # Ctrl-D: no answer is no
        print(file=sys.stderr)
        return False
    return answer.strip().lower() == "yes"


def run_flash(args: argparse.Namespace) -> int:
    from dpupose.board.devices import human_bytes
    from dpupose.board.flash import flash
    from dpupose.board.progress import progress_wanted

    report = flash(
        args.image,
        args.device,
        bmap=args.bmap,
        use_bmaptool=False if args.no_bmaptool else None,
        force=args.force,
        confirm=None if args.yes else _confirm,
        progress=progress_wanted(args.progress),
    )
    print(
        f"wrote {report.image.path.name} to {report.target} ({report.method}, "
        f"{human_bytes(report.written)} written, {human_bytes(report.verified)} read back and verified)"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dpupose.board.images import open_image
    from dpupose.board.progress import Progress, progress_wanted
    from dpupose.board.verify import VerificationFailed, compare_with_image
    from dpupose.errors import UsageError

    info = open_image(args.image)
    device = Path(args.device)
    _check_readable_target(device, args.device)
    if same_file(info.path, device):  # nothing to learn from a file compared with itself
        raise UsageError(
            f"--device {args.device} is the image {args.image} itself (the same file): comparing it with itself "
            "checks nothing; give as --device the card the image was written to (/dev/sdX, /dev/mmcblkN) or the "
            "file `dpupose sdcard flash` wrote it to"
        )
    bar = Progress(info.size, "verify", enabled=progress_wanted(args.progress))
    try:
        compare_with_image(info, device, progress=bar)
    except VerificationFailed as exc:  # the check failed (1), as opposed to bad input (2)
        bar.close()
        device_staged = exc.offset is not None and _staged(device)
        image_staged = exc.offset is not None and _staged(info.path)
        if device_staged and not image_staged:
            print(_staged_card_note(args.device, info.path, exc.offset))
        elif image_staged and not device_staged:
            # The other way round (the arguments swapped, or a card written before staging): not a failing card.
            print(
                f"verification failed: {args.device} differs from {info.path.name} from byte {exc.offset}: "
                f"{info.path.name} is an image dpupose staged (dpupose/manifest.json on its boot partition) and "
                f"{args.device} holds none of the staged files, so it was written from an image before staging "
                f"(or the two are given the other way round: the image first, the card as --device); compare it "
                f"with the image it was written from: dpupose sdcard verify IMAGE --device {shlex.quote(args.device)}"
            )
        else:
            print(exc)
        return 1
    bar.close()
    print(f"{args.device} holds {info.path.name} ({info.size} bytes): identical")
    return 0


def _check_readable_target(device, given: str) -> None:
    """UsageError, before anything is opened, for a --device that is not a card or a file: nothing there, a folder
    (read back as 'Is a directory'), a FIFO (whose open waited for a writer, for good) or another device."""
    import os
    import stat

    from dpupose.errors import UsageError

    what = (
        "give the card the image was written to (/dev/sdX, /dev/mmcblkN; `lsblk` lists them) or the file it was "
        "written to"
    )
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        from dpupose.board.flash import in_device_folder

        hint = " (is the card reader plugged in?)" if in_device_folder(device) else ""
        raise UsageError(f"--device {given} does not exist{hint}: {what}") from None
    except OSError as exc:
        raise UsageError(f"--device {given} cannot be read ({exc.strerror}): {what}") from None
    if stat.S_ISBLK(mode) and not os.access(device, os.R_OK):  # else "cannot read /dev/sdb back for verification"
        from dpupose.board.tools import sudo_command
        from dpupose.errors import DeviceError

        command = sudo_command()
        how = (
            f"run the command with sudo and dpupose's full path (sudo does not keep a virtual environment on "
            f"PATH): {command}"
            if command
            else "run it as root (sudo)"
        )
        raise DeviceError(f"no permission to read --device {given}: reading a card needs root; {how}")
    if stat.S_ISBLK(mode) or stat.S_ISREG(mode):
        return
    kind = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device"}.get(
        stat.S_IFMT(mode), "not a disk or a file"
    )
    raise UsageError(f"--device {given} is {kind}, not a card or an image file: {what}")


def _staged_card_note(device: str, image, offset: int) -> str:
    """The verdict for a staged card or file compared with the image it was staged from: not a failing card.
    The staged copies are `make sdcard`'s build/sdcard/staged.img and `sdcard stage`'s default for IMAGE; where
    --device is one of them (the same file), it is the copy itself, and comparing it with itself checks nothing."""
    from pathlib import Path

    from dpupose.board.stage import default_output

    copies = list(dict.fromkeys([Path("build/sdcard/staged.img"), default_output(image)]))
    head = f"verification failed: {device} differs from {image.name} from byte {offset}: "
    itself = next((c for c in copies if same_file(c, device)), None)
    if itself is not None:
        return (
            head + f"it is the staged copy of {image.name} itself ({itself}, with dpupose/manifest.json on its boot "
            "partition), which differs from the image by the staged files, as it should; comparing it with itself "
            f"checks nothing: to check a card written from it, dpupose sdcard verify {shlex.quote(str(itself))} "
            "--device /dev/sdX (the card)"
        )
    there = [c for c in copies if c.is_file()]
    copy = there[0] if len(there) == 1 else copies[0]
    which = "the copy `make sdcard` stages" if copy == copies[0] else "the copy `dpupose sdcard stage` made"
    return (
        head + "it holds an image dpupose staged (dpupose/manifest.json on its boot partition), which differs from "
        "the image it was staged from by the staged files; compare it with the staged copy it was written from: "
        f"dpupose sdcard verify {shlex.quote(str(copy))} --device {shlex.quote(device)} ({which})"
    )


def _staged(image) -> bool:
    """Whether a raw image or card holds dpupose's manifest on its boot partition (False where that cannot be read:
    a compressed image, no PYNQ partitions, mtools missing)."""
    from dpupose.board.fatfs import FatFs
    from dpupose.board.images import ImageKind, open_image
    from dpupose.board.partitions import find_pynq_partitions
    from dpupose.board.stage import BOOT_MANIFEST
    from dpupose.errors import DpuposeError

    try:
        if not image.is_block_device() and open_image(image).kind is not ImageKind.RAW:
            return False
        return FatFs(image, find_pynq_partitions(image).boot).read(BOOT_MANIFEST) is not None
    except (DpuposeError, OSError, ValueError):
        return False


def run_stage(args: argparse.Namespace) -> int:
    from dpupose.board.progress import progress_wanted
    from dpupose.board.stage import stage

    report = stage(
        args.image,
        args.overlay,
        args.model,
        out=args.out,
        in_place=args.in_place,
        wheel=args.wheel,
        progress=progress_wanted(args.progress),
    )
    print(report.verdict)
    if report.backend_note:
        print(f"note: {report.backend_note}")
    print(f"staged {len(report.manifest.entries)} files onto {report.image}")
    print(f"list them: dpupose sdcard ls {shlex.quote(str(report.image))}")
    from dpupose.board.tools import root_command

    flash = ["sdcard", "flash", str(report.image), "--device", "/dev/sdX"]
    # writing a card needs root: an ordinary user is shown the command that works for them (dpupose's full
    # path after sudo, which does not keep a virtual environment on PATH)
    as_root = root_command(flash) if os.geteuid() != 0 else None
    print(f"write it to a card: {as_root or 'dpupose ' + shlex.join(flash)}")
    print(f"on the board, after the first boot: {report.run_command}")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from dpupose.board.devices import human_bytes
    from dpupose.board.stage import list_staged

    listing = list_staged(args.image)
    if listing is None:
        print(f"nothing staged on {args.image} (no dpupose manifest on its root partition)")
        return 1
    m = listing.manifest
    print(f"{args.image}: staged by {m.generated_by}; wheel {m.wheel}")
    print(f"  overlay fingerprint: {m.overlay_fingerprint or 'unknown'}")
    print(f"  plan fingerprint:    {m.plan_fingerprint or 'unknown'}")
    for c in listing.checks:
        print(f"  {c.status:8s} {human_bytes(c.entry.size):>10s}  {c.entry.sha256[:12]}  {c.entry.path}")
    print(f"  first-boot setup {'enabled' if listing.enabled else 'NOT enabled'}")
    bad = [c for c in listing.checks if c.status != "ok"]
    if bad or not listing.boot_copy_matches:
        problems = [f"{len(bad)} of {len(listing.checks)} files changed or missing"] if bad else []
        if not listing.boot_copy_matches:
            problems.append("the boot partition's manifest copy differs")
        print(f"{args.image}: {'; '.join(problems)}: stage it again")
        return 1
    print(f"{len(listing.checks)} files, all SHA-256 sums match")
    return 0
