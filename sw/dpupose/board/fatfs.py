"""Reading and writing the FAT boot partition inside an image file with mtools (no root, no mount).

mtools addresses a file system at a byte offset as `-i IMAGE@@OFFSET`. MTOOLS_SKIP_CHECK keeps it from
refusing a boot sector whose geometry fields disagree with the partition size (common in images).

mtools hands an image name holding shell characters ($, `, *, ~, brackets...) to /bin/sh to expand: a
name such as `card$(...).img` runs the command in it, and `card$x.img` opens another file. An image whose
path holds any character outside plain letters, digits and `_./+,=-` is therefore reached through a
symbolic link of a plain name in a private temporary folder, made for each mtools call.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from dpupose.board.partitions import Partition
from dpupose.board.tools import run_tool
from dpupose.errors import ImageError, ToolFailed

ENV = {"MTOOLS_SKIP_CHECK": "1"}
# Characters of an image path mtools takes as they are ('@' is left out: "@@" ends the name).
_PLAIN = re.compile(r"[A-Za-z0-9_./+,=-]+")


def plain_path(path: str) -> bool:
    """Whether mtools opens `path` as it is (see the module's docstring)."""
    return _PLAIN.fullmatch(path) is not None


class FatFs:
    def __init__(self, image: Path, part: Partition) -> None:
        self.image = Path(image)
        self.offset = part.offset
        self.drive = f"{image}@@{part.offset}"

    @contextlib.contextmanager
    def _plain_drive(self) -> Iterator[None]:
        """For the block, `drive` names the image by a plain path (a link to it) when its own is not one."""
        if plain_path(str(self.image)):
            yield
            return
        with tempfile.TemporaryDirectory(prefix="dpupose-fat-") as tmp:
            link = Path(tmp) / "image.img"
            if not plain_path(str(link)):
                raise ImageError(
                    f"mtools cannot open {self.image} (its path holds characters mtools hands to the shell) "
                    f"and the temporary folder {tmp} has such characters too: set TMPDIR to a plain folder "
                    "(letters, digits, _ . / - only), or rename the image"
                )
            os.symlink(os.path.abspath(self.image), link)
            drive, self.drive = self.drive, f"{link}@@{self.offset}"
            try:
                yield
            finally:
                self.drive = drive

    def mdir_argv(self, path: str, bare: bool = False) -> list[str]:
        return ["mdir", *(["-b"] if bare else []), "-i", self.drive, f"::{path}"]

    def mmd_argv(self, path: str) -> list[str]:
        return ["mmd", "-i", self.drive, f"::{path}"]

    def mcopy_argv(self, source: Path, path: str) -> list[str]:
        # -D o: overwrite an existing file of that name without asking.
        return ["mcopy", "-D", "o", "-i", self.drive, str(source), f"::{path}"]

    def mtype_argv(self, path: str) -> list[str]:
        return ["mtype", "-i", self.drive, f"::{path}"]

    def exists(self, path: str) -> bool:
        with self._plain_drive():
            return run_tool(self.mdir_argv(path, bare=True), check=False, env=ENV).returncode == 0

    def free_bytes(self) -> int:
        with self._plain_drive():
            out = run_tool(self.mdir_argv("/"), env=ENV).stdout
        m = re.search(r"([\d\s.,']+)bytes free", out)
        if not m:
            raise ImageError(f"cannot read the free space of the boot partition from mdir: {out[-200:]!r}")
        return int(re.sub(r"\D", "", m.group(1)))

    def makedirs(self, path: str) -> None:
        if not self.exists(path):
            self._run(lambda: self.mmd_argv(path))

    def put(self, source: Path, path: str) -> None:
        self._run(lambda: self.mcopy_argv(source, path))

    def read(self, path: str) -> bytes | None:
        with self._plain_drive():
            proc = run_tool(self.mtype_argv(path), check=False, env=ENV, text=False)
        return proc.stdout if proc.returncode == 0 else None

    def _run(self, argv: Callable[[], list[str]]) -> None:
        try:
            with self._plain_drive():
                run_tool(argv(), env=ENV)
        except ToolFailed as exc:
            full = "full" in exc.stderr.lower() or "no free" in exc.stderr.lower()
            what = "the boot partition is full" if full else "mtools could not write the boot partition"
            raise ImageError(f"{what}: {exc.stderr.strip() or exc}") from None
