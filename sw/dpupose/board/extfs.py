"""Reading and writing an ext4 file system inside an image file with e2fsprogs' debugfs (no root).

debugfs opens a file system at a byte offset with the io option in the name: `IMAGE?offset=N`.
debugfs exits 0 even when a command fails, so every write batch is checked through its stderr (any
line other than the version banner is an error) and the caller reads everything back afterwards.
`write` is given a bare name after a `cd` to its folder (before e2fsprogs 1.46.2 it did not resolve
a path). Commands are batched in one `debugfs -f CMDFILE` run; `ls -p` output (one
`/ino/mode/uid/gid/name/size/` line per entry, after the `debugfs: ls -p DIR` echo) tells which paths
exist before writing.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dpupose.board.partitions import Partition
from dpupose.board.tools import run_tool
from dpupose.errors import ImageError

log = logging.getLogger(__name__)

BANNER = re.compile(r"^debugfs \d")
FULL_MESSAGES = ("Could not allocate", "No free space", "Could not allocate inode", "No space left")
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000


@dataclass(frozen=True)
class Entry:
    name: str
    mode: int
    uid: int
    gid: int
    size: int

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR


def quote(arg: str | PurePosixPath | Path) -> str:
    """One debugfs argument; the ss parser takes double-quoted strings with spaces."""
    text = str(arg)
    if any(c in text for c in '"\n\r'):
        raise ImageError(f"cannot pass a path with quotes or newlines to debugfs: {text!r}")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def parse_ls(stdout: str) -> dict[str, dict[str, Entry]]:
    """`ls -p` sections of a `debugfs -f` run: directory -> name -> Entry (missing directories absent)."""
    out: dict[str, dict[str, Entry]] = {}
    current: dict[str, Entry] | None = None
    for line in stdout.splitlines():
        if line.startswith("debugfs: "):
            cmd = line[len("debugfs: ") :].split(None, 2)
            current = None
            if len(cmd) == 3 and cmd[:2] == ["ls", "-p"]:
                current = out.setdefault(cmd[2].strip('"'), {})
            continue
        fields = line.split("/")
        if current is not None and len(fields) >= 7 and fields[0] == "":
            name = fields[5]
            if name in (".", ".."):
                continue
            current[name] = Entry(name, int(fields[2], 8), int(fields[3]), int(fields[4]), int(fields[6] or 0))
    return out


class DebugFs:
    """One ext file system at `part.offset` inside `image`."""

    def __init__(self, image: Path, part: Partition) -> None:
        if "?" in str(image):
            raise ImageError(f"debugfs cannot open a path containing '?': rename {image}")
        self.spec = f"{image}?offset={part.offset}"

    def argv(self, cmdfile: Path, write: bool) -> list[str]:
        return ["debugfs", *(["-w"] if write else []), "-f", str(cmdfile), self.spec]

    def run(self, commands: list[str], *, write: bool = False) -> tuple[str, list[str]]:
        """Run commands in one debugfs process; returns (stdout, error lines)."""
        fd, name = tempfile.mkstemp(prefix="dpupose-debugfs-", suffix=".cmd")
        cmdfile = Path(name)
        try:
            with open(fd, "w") as f:
                f.write("\n".join(commands) + "\n")
        except OSError as exc:  # a full TMPDIR: the write's error names no file
            cmdfile.unlink(missing_ok=True)
            raise type(exc)(exc.errno, exc.strerror, str(cmdfile)) from None
        try:
            proc = run_tool(self.argv(cmdfile, write), check=False)
        finally:
            os.unlink(cmdfile)
        errors = [ln for ln in proc.stderr.splitlines() if ln.strip() and not BANNER.match(ln)]
        if proc.returncode != 0 or any("while trying to open" in e or "not open" in e for e in errors):
            raise ImageError(
                f"debugfs cannot open the root file system ({errors[0] if errors else proc.returncode}): "
                "the image is damaged, or e2fsprogs is older than the file system's features"
            )
        return proc.stdout, errors

    def list_dirs(self, dirs: list[PurePosixPath]) -> dict[str, dict[str, Entry]]:
        stdout, _ = self.run([f"ls -p {quote(d)}" for d in dirs])
        return parse_ls(stdout)

    def read(self, path: PurePosixPath) -> bytes | None:
        """A file's bytes, or None if it does not exist."""
        with tempfile.TemporaryDirectory(prefix="dpupose-debugfs-") as tmp:
            dest = Path(tmp) / "out"
            _, errors = self.run([f"dump {quote(path)} {quote(dest)}"])
            _check_copied_out(errors, path, dest)
            return dest.read_bytes() if dest.exists() else None

    def dump_tree(self, path: PurePosixPath, dest: Path) -> Path | None:
        """Copy a directory tree out to dest/<basename>; None if it does not exist."""
        dest.mkdir(parents=True, exist_ok=True)
        _, errors = self.run([f"rdump {quote(path)} {quote(dest)}"])
        _check_copied_out(errors, path, dest)
        out = dest / path.name
        return out if out.is_dir() else None

    def apply(self, commands: list[str]) -> None:
        """Run a write batch; ImageError with debugfs's messages if any command failed."""
        log.debug("debugfs %s: %d commands", self.spec, len(commands))
        _, errors = self.run(commands, write=True)
        if errors:
            full = any(m in e for e in errors for m in FULL_MESSAGES)
            what = "the root partition is full" if full else "debugfs could not write the root partition"
            raise ImageError(f"{what}: {'; '.join(errors[:4])}")


# How debugfs's dump and rdump begin a line about a host file, folder or link they could not make or write
# (debugfs/dump.c): 'dump: No space left on device while writing file', rdump's '... while making directory
# /tmp/.../sub' (a full disk or no inode left for it), '... while creating symlink TARGET -> /tmp/.../link' and
# '... while opening /tmp/.../x', dump's '... while opening /tmp/x for dump_inode', and the close of a file written
# ('... while closing /tmp/.../x', dump's '... for dump_inode': where a network file system or quota reports the
# failed write); and the errors it names that are a full disk or quota. (Its other lines, such as 'while changing
# ownership' of a copy, which a user other than root cannot do, say nothing of the copy's bytes.)
_COPYING_OUT = re.compile(
    r"r?dump: (?P<what>.+?) while (?:writing file$|making directory |creating symlink |opening |closing )"
)
_HOST_ERRORS = {os.strerror(code): code for code in (errno.ENOSPC, errno.EDQUOT)}


def _check_copied_out(errors: list[str], path: PurePosixPath, dest: Path) -> None:
    """Raise when debugfs could not make or write the copy of `path` it made at `dest` (a temporary folder): it
    says so on stderr only ('dump: No space left on device while writing file') and exits 0, leaving a file
    empty or cut short, or a file or folder not made, which the read-back then called changed or missing
    ('staged files did not read back correctly', `sdcard ls` exit 1) on a full TMPDIR. A full disk or quota is
    an OSError naming `dest` (the CLI's message for a full disk); another error an ImageError with debugfs's
    line."""
    for line in errors:
        found = _COPYING_OUT.match(line)
        if found:
            what = found["what"]
            if what in _HOST_ERRORS:
                raise OSError(_HOST_ERRORS[what], what, str(dest))
            raise ImageError(f"debugfs could not copy {path} out of the image into {dest}: {line}")


@dataclass(frozen=True)
class FileOp:
    """Put host file `source` at `path` on the file system."""

    source: Path
    path: PurePosixPath
    mode: int  # permission bits, e.g. 0o644
    uid: int
    gid: int


@dataclass(frozen=True)
class LinkOp:
    path: PurePosixPath
    target: PurePosixPath


def parents_of(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Every ancestor directory of the paths (excluding /), shallowest first."""
    found = {p for path in paths for p in path.parents if str(p) != "/"}
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def dirs_to_list(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """The directories whose `ls -p` tells whether every path and every ancestor exists."""
    return [PurePosixPath("/"), *parents_of(paths)]


def write_commands(
    files: list[FileOp],
    links: list[LinkOp],
    existing: dict[str, dict[str, Entry]],
    dir_owner: dict[PurePosixPath, tuple[int, int]],
) -> list[str]:
    """The debugfs batch that creates missing directories, replaces existing files and links.

    existing: `list_dirs(dirs_to_list(paths))`; dir_owner: uid/gid for directories created here
    (default root).
    """

    def lookup(path: PurePosixPath) -> Entry | None:
        return existing.get(str(path.parent), {}).get(path.name)

    cmds: list[str] = []
    targets = [f.path for f in files] + [ln.path for ln in links]
    for d in parents_of(targets):
        entry = lookup(d)
        if entry is not None:
            if not entry.is_dir:
                raise ImageError(f"{d} exists on the root partition but is not a directory")
            continue
        cmds.append(f"mkdir {quote(d)}")
        uid, gid = dir_owner.get(d, (0, 0))
        cmds += [f"sif {quote(d)} uid {uid}", f"sif {quote(d)} gid {gid}"]
    for path in targets:
        entry = lookup(path)
        if entry is not None:
            if entry.is_dir:
                raise ImageError(f"{path} exists on the root partition as a directory")
            cmds.append(f"rm {quote(path)}")
    for f in files:
        p = quote(f.path)
        cmds += [
            # debugfs before e2fsprogs 1.46.2 (Ubuntu 20.04 has 1.45.5) links write's second argument
            # into the current directory as one name, slashes and all: a corrupt directory entry.
            f"cd {quote(f.path.parent)}",
            f"write {quote(f.source)} {quote(f.path.name)}",
            "cd /",
            f"sif {p} mode 0{S_IFREG | f.mode:o}",
            f"sif {p} uid {f.uid}",
            f"sif {p} gid {f.gid}",
        ]
    for ln in links:
        cmds.append(f"symlink {quote(ln.path)} {quote(ln.target)}")
    return cmds


def blocks_needed(sizes: list[int], block_size: int, new_dirs: int) -> int:
    """Blocks the files and directories will take: data blocks, one extent/index block per file
    (worst case), one block per new directory, plus 16 blocks of slack for directory growth."""
    data = sum((s + block_size - 1) // block_size + 1 for s in sizes)
    return data + new_dirs + 16


def user_ids(passwd: bytes | None, user: str, default: tuple[int, int]) -> tuple[int, int]:
    """uid and gid of `user` from an /etc/passwd text, or `default`."""
    for line in (passwd or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user:
            try:
                return int(fields[2]), int(fields[3])
            except ValueError:
                break
    return default
