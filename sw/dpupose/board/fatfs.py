"""Reading and writing the FAT boot partition inside an image file with mtools (no root, no mount).

mtools addresses a file system at a byte offset as `-i IMAGE@@OFFSET`. MTOOLS_SKIP_CHECK keeps it from
refusing a boot sector whose geometry fields disagree with the partition size (common in images).
"""

from __future__ import annotations

import re
from pathlib import Path

from dpupose.board.partitions import Partition
from dpupose.board.tools import run_tool
from dpupose.errors import ImageError, ToolFailed

ENV = {"MTOOLS_SKIP_CHECK": "1"}


class FatFs:
    def __init__(self, image: Path, part: Partition) -> None:
        self.drive = f"{image}@@{part.offset}"

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
        return run_tool(self.mdir_argv(path, bare=True), check=False, env=ENV).returncode == 0

    def free_bytes(self) -> int:
        out = run_tool(self.mdir_argv("/"), env=ENV).stdout
        m = re.search(r"([\d\s.,']+)bytes free", out)
        if not m:
            raise ImageError(f"cannot read the free space of the boot partition from mdir: {out[-200:]!r}")
        return int(re.sub(r"\D", "", m.group(1)))

    def makedirs(self, path: str) -> None:
        if not self.exists(path):
            self._run(self.mmd_argv(path))

    def put(self, source: Path, path: str) -> None:
        self._run(self.mcopy_argv(source, path))

    def read(self, path: str) -> bytes | None:
        proc = run_tool(self.mtype_argv(path), check=False, env=ENV, text=False)
        return proc.stdout if proc.returncode == 0 else None

    def _run(self, argv: list[str]) -> None:
        try:
            run_tool(argv, env=ENV)
        except ToolFailed as exc:
            full = "full" in exc.stderr.lower() or "no free" in exc.stderr.lower()
            what = "the boot partition is full" if full else "mtools could not write the boot partition"
            raise ImageError(f"{what}: {exc.stderr.strip() or exc}") from None
