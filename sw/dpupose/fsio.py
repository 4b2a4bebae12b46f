"""Atomic file output (board-safe, standard library only).

`atomic_path(path)` yields a temporary path in the destination folder; when the block ends normally the
file gets the usual permissions (0666 less the umask) and replaces `path` in one rename, otherwise it is
removed. A crash never leaves a half-written checkpoint, model, plan or report behind. `atomic_dir(path)`
does the same for a whole folder (a quantized model, a split plan); `check_replaceable` says beforehand
whether the folder already there may go.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

log = logging.getLogger(__name__)


def _fsync(path: str | Path, shown: str | Path) -> None:
    """Flush a written file's data to disk, so a rename never puts an empty or half-written file in place
    after a power cut (the writer may not have flushed it itself). An error (a full disk or quota, which
    network file systems report only now; an I/O error) names `shown`, the output the user chose: os.fsync's
    own names no file, and the temporary one means nothing to the user."""
    fd: int | None = None
    try:
        try:
            with signals_deferred():  # as in lock_folder: until `fd` names it, for the finally to close it
                fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
        finally:
            if fd is not None:
                os.close(fd)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(shown)) from None


def sync_file(path: str | Path, shown: str | Path) -> None:
    """Flush the written file `path` to disk now, an error naming `shown` (see _fsync): for files that must
    all reach the disk before the first of them is renamed into place."""
    _fsync(path, shown)


def _fsync_all(paths: Sequence[Path], shown: str | Path) -> None:
    """_fsync each of `paths`; many at once from a few threads, so that their flushes share the file system's
    journal commits (one file at a time costs a commit each: a minute or more for a generated data set)."""
    if len(paths) < 8:
        for p in paths:
            _fsync(p, shown)
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(lambda p: _fsync(p, shown), paths):  # the first error is raised here
            pass


PID_MAX = 2**22  # Linux's largest (kernel.pid_max's limit); os.kill takes no number above 2**31 - 1


def left_by_dead_process(pid: str) -> bool:
    """Whether a temporary named after process `pid` (decimal text) is stale: that process is not running,
    or is this one (whose own temporaries exist only inside the call that makes them; a dead process can
    have had this PID, as a container's processes get the same small PIDs at every start). Text that is no
    PID: False, as is a string of other scripts' digits ('²', '٣': str.isdigit's, which int() refuses) and a
    number above any PID (a date and time, '202401011200': os.kill refuses it, OverflowError)."""
    if not (pid.isascii() and pid.isdigit()) or int(pid) > PID_MAX:
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # running, as another user's process
        return False
    return False


_WRITING: set[str] = set()  # the temporaries (and atomic_dir's folders moved aside) this process is writing now
_OLD_REST = re.compile(r"([1-9][0-9]*)-[0-9a-f]{8}")  # after `.NAME.old-`: the PID, 8 random hex digits


def _old_name(path: Path) -> Path:
    """A new name to move the folder `path` aside to: `.NAME.old-PID-XXXXXXXX` (8 random hex digits), a name
    no folder of a user's plausibly has and that moved_aside recognises exactly."""
    while True:
        old = path.with_name(f".{path.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
        if not os.path.lexists(old):
            return old


def moved_aside(path: str | Path) -> list[tuple[Path, str]]:
    """The folders beside `path` that atomic_dir moved an earlier `path` aside to (`.NAME.old-PID-XXXXXXXX`,
    see _old_name) and a process killed before it removed them left, with the PID of the process that
    moved each one, sorted by name; links and files of such names are not among them. Only names of exactly
    that form: a user's hidden `.NAME.old-2019` is not one. (Before, the name was `.NAME.old-PID`, which no
    one can tell from such a folder of a user's: an earlier version's leftover of that form stays.)"""
    path = Path(path)
    start, found = len(path.name) + 6, []
    for old in sorted(path.parent.glob(f".{glob.escape(path.name)}.old-*-*")):
        match = _OLD_REST.fullmatch(old.name[start:])
        if match and old.is_dir() and not old.is_symlink():
            found.append((old, match[1]))
    return found


def _remove_stale_old(path: Path) -> None:
    """Remove the `.NAME.old-PID-XXXXXXXX` folders (moved_aside) that atomic_dir left beside `path` when a
    process was killed between putting the new folder in place and removing the old one (PID no longer
    running); one left by a kill between moving the earlier folder aside and putting the new one in place (no
    `path`) is put back. One with this process's PID is stale as well (left_by_dead_process: a container's
    command has the same PID at every start) unless this process is swapping it now (another thread)."""
    for old, pid in moved_aside(path):
        if not left_by_dead_process(pid) or str(old) in _WRITING:
            continue
        if not os.path.lexists(path):
            # Killed between its two renames: the earlier folder was moved aside and no new one is in
            # place. It goes back, so that a failure of this write leaves it as it was.
            os.replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)


_PARTIAL_ID = r"([1-9][0-9]*)-([0-9a-f]{8})"  # in a copy's name: the PID, 8 random hex digits
# After `..NAME.`: a copy's copy (_PARTIAL_ID twice), or tempfile's 8 characters (flash's temporary before)
_INNER_REST = re.compile(rf"{_PARTIAL_ID}\.partial\.(?:{_PARTIAL_ID}|[a-z0-9_]{{8}})")
_PARTIAL_REST = re.compile(_PARTIAL_ID)


def partial_name(dest: str | Path) -> Path:
    """A new name for a copy of `dest` written beside it before it is renamed into place (`sdcard flash` to a
    file, `sdcard stage`'s copy): `.NAME.PID-XXXXXXXX.partial` (8 random hex digits), a name no file of a
    user's plausibly has and that partials recognises exactly. Not made: the caller makes it (or has it made)
    after new_partial, or marks it being written some other way."""
    dest = Path(dest)
    while True:
        partial = dest.with_name(f".{dest.name}.{os.getpid()}-{os.urandom(4).hex()}.partial")
        if not os.path.lexists(partial):
            return partial


def partials(dest: str | Path) -> list[tuple[Path, Path, list[str]]]:
    """The copies of `dest` beside it (`.NAME.PID-XXXXXXXX.partial`, see partial_name) and the copies of those
    (`..NAME.PID-XXXXXXXX.partial.PID-YYYYYYYY.partial`: flash's temporary for a stage's copy, which a stage
    killed while copying leaves; an earlier version gave it tempfile's 8 characters for PID-YYYYYYYY), each
    with the copy of `dest` it is or is for and the PIDs in its name, sorted by name. Only names of exactly
    these forms: a user's hidden `.sd.img.2024.partial` is not one, nor are an earlier version's
    `.NAME.PID.partial` and `.NAME.partial`, which no one can tell from such a file of a user's."""
    dest = Path(dest)
    found = []
    for prefix, rest in (("", _PARTIAL_REST), (".", _INNER_REST)):
        start, end = len(prefix) + len(dest.name) + 2, len(".partial")
        for path in dest.parent.glob(f"{prefix}.{glob.escape(dest.name)}.*-*.partial"):
            match = rest.fullmatch(path.name[start : len(path.name) - end])
            if match:
                copy = dest.with_name(f".{dest.name}.{match[1]}-{match[2]}.partial")
                found.append((path, copy, [pid for pid in match.groups()[::2] if pid]))  # (PID, digits) pairs
    return sorted(found)


def remove_stale_partials(dest: str | Path) -> None:
    """Remove the copies of `dest` (see partials) that a killed process (kill -9, the OOM killer, a power cut)
    left beside it: each is as large as the image, and nothing else would remove it. Only those of a process
    no longer running go, or of this PID (left_by_dead_process: a container's command has the same PID at
    every start) but not being written now (new_partial: another thread's); only regular files, not links,
    and only those this user may remove (another user's in a shared folder stays, and the write goes on)."""
    for path, copy, pids in partials(dest):
        if (
            all(left_by_dead_process(pid) for pid in pids)
            and str(path) not in _WRITING
            and str(copy) not in _WRITING
            and path.is_file()
            and not path.is_symlink()
        ):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # another user's in a shared folder (/tmp): leave it, as no copy of this one
                log.debug("could not remove stale %s: %s", path, exc)


def new_partial(dest: str | Path) -> Path:
    """A new name for a copy of `dest` (partial_name), this process's until remove_partial: remove_stale_partials
    leaves it (another thread may be cleaning up beside `dest`). Made and removed in one frame, as

        partial = new_partial(dest)
        try:
            ...  # make the copy at `partial`, and rename it into place
        finally:
            try:
                remove_partial(partial)
            finally:  # Ctrl-C or SIGTERM as the first began, before it removed anything
                remove_partial(partial)

    not as a generator context manager's: a signal as its __exit__ began, before it resumed the generator, left
    the copy to the generator's collection, which the exception's traceback (kept by a caller, a notebook's
    last exception) put off for as long as it was kept. One signal, wherever it lands, is outlived by one of
    the two removals; each is a no-op once the copy is gone (renamed into place, or removed)."""
    partial = partial_name(dest)
    _WRITING.add(str(partial))
    return partial


def remove_partial(partial: Path) -> None:
    """Remove whatever is at `partial` (new_partial's name: a copy not renamed into place), and mark it no
    longer this process's."""
    try:
        if os.path.lexists(partial):  # unlink of a missing file on a read-only file system fails (EROFS)
            partial.unlink()
    finally:
        _WRITING.discard(str(partial))


_TEMP_REST = re.compile(r"([0-9]+)-[a-z0-9_]{8}")  # the PID, tempfile's 8 (its alphabet; remove_dir's hex)


def temporaries(path: str | Path, suffix: str = ".tmp") -> list[tuple[Path, str]]:
    """The temporaries beside `path` that atomic_path, atomic_dir and remove_dir name after it
    (`.NAME.PID-XXXXXXXX` + suffix, files, folders or links), with the PID of the process that made each.
    Only names of exactly that form: XXXXXXXX is the 8 characters tempfile (or remove_dir's hex) gives, so a
    user's hidden file of a like name (`.out.2024-backup.tmp`) is not one of these."""
    path = Path(path)
    start, end = len(path.name) + 2, len(suffix)
    found = []
    for tmp in sorted(path.parent.glob(f".{glob.escape(path.name)}.*-*{glob.escape(suffix)}")):
        match = _TEMP_REST.fullmatch(tmp.name[start : len(tmp.name) - end])
        if match:
            found.append((tmp, match[1]))
    return found


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Remove the temporaries (`.NAME.PID-XXXXXXXX` + suffix, files or folders: see temporaries) that
    atomic_path and atomic_dir left beside `path` when their process was killed (kill -9, the OOM killer, a
    power cut): a data set's can be gigabytes, and nothing else would ever remove it. Only those of a process
    no longer running go, or of this PID (left_by_dead_process: a container's command has the same PID at
    every start) but not being written now (another thread may be writing one)."""
    for tmp, pid in temporaries(path, suffix):
        if not left_by_dead_process(pid) or str(tmp) in _WRITING:
            continue
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        except OSError as exc:  # someone else's, or already gone: leave it
            log.debug("could not remove stale %s: %s", tmp, exc)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def remove_dir(path: str | Path) -> None:
    """Remove the folder `path` so that a kill while it is removed leaves nothing at `path`: it is first renamed
    to a temporary of this process beside it (`.NAME.PID-XXXXXXXX.tmp`, one rename), which atomic_path and
    atomic_dir remove once it is stale (_remove_stale_temporaries), then removed. Removed in place, a folder
    killed halfway keeps some of its files under its own name, where no one can tell it from a whole one."""
    path = Path(path)
    aside = path.with_name(f"{_temp_prefix(path)}{os.urandom(4).hex()}.tmp")
    os.replace(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _naming(exc: OSError, tmp: str | Path, path: str | Path) -> OSError:
    """`exc` with the names the user knows: a file in the temporary `tmp` becomes the same file in `path`,
    and an error that names no file (a write or close on a full disk: No space left on device) names
    `path`. The error of a write into a temporary file otherwise says nothing the user can act on. An error
    of a message only (no errno: Pillow's, gzip's BadGzipFile) stays as it is: rebuilt, it would lose it."""
    if exc.errno is None:
        return exc
    tmp, path = str(tmp), str(path)

    def shown(name: object) -> object:
        if name is None:
            return None
        name = os.fsdecode(name) if isinstance(name, (str, bytes)) else name
        if name == tmp:
            return path
        if isinstance(name, str) and name.startswith(tmp + os.sep):
            return path + name[len(tmp) :]
        return name

    filename, filename2 = shown(exc.filename), shown(exc.filename2)
    if filename is None:
        filename = path
    if filename2 == filename:  # the final rename of the temporary file
        filename2 = None
    if filename == exc.filename and filename2 == exc.filename2:
        return exc
    renamed = type(exc)(exc.errno, exc.strerror, filename, None, filename2)
    renamed.__traceback__ = exc.__traceback__
    return renamed


def _raise_naming(exc: OSError, tmp: str | Path, path: str | Path) -> NoReturn:
    """Raise `exc` (being handled) with the names the user knows (_naming)."""
    renamed = _naming(exc, tmp, path)
    if renamed is exc:
        raise exc
    raise renamed from None


def free_space(path: str | Path) -> str:
    """The space left to an unprivileged user on the file system of `path` (or of its nearest existing
    parent), e.g. '1.2 MB'; '?' when it cannot be read."""
    where = os.path.abspath(path)
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    try:
        st = os.statvfs(where)
    except OSError:
        return "?"
    free = st.f_bavail * st.f_frsize
    return f"{free / 1e9:.1f} GB" if free >= 1e9 else f"{free / 1e6:.1f} MB"


def current_umask() -> int:
    """The process's umask. Reading it means setting it (to 0) and back: Ctrl-C or SIGTERM between the two left
    it 0, and a process that went on (a notebook) made every later file writable by all; they are held back."""
    with signals_deferred():
        umask = os.umask(0)
        os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~current_umask()


def make_dirs(path: str | Path) -> list[Path]:
    """`path` and the folders above it, made where missing, as mkdir -p does, also where one of them is a
    symbolic link that leads nowhere (yet): the folder it names is made, as the link says where the output goes
    (architecture.md), where mkdir refused it with 'File exists' (`dpu files --out LINK`). Returns the folders
    it made, the innermost first, as they are on disk (at the link's target where it made them there), for a
    command that fails to remove again: those its own mkdir made, not those found missing before it began (a
    parent another run's clean-up removed in between, made again here, is one; one another process made is
    not)."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    made: list[Path] = []
    try:
        _mkdir_parents(path, made)
    except FileExistsError:
        if real == Path(os.path.abspath(path)):  # no link on the way: what is there is no folder
            raise
        try:
            _mkdir_parents(real, made)
        except OSError as exc:  # name the path the user gave, and where its link leads
            raise type(exc)(exc.errno, f"{exc.strerror} (the symbolic link there leads to {real})", str(path)) from None
    return made[::-1]


def _mkdir_parents(path: Path, made: list[Path]) -> None:
    """pathlib's mkdir(parents=True, exist_ok=True), its errors included, appending each folder its own mkdir
    made (where it is on disk: through a link, at its target) to `made`, the outermost first."""
    try:
        os.mkdir(path)
    except FileNotFoundError:
        if path.parent == path:
            raise
        _mkdir_parents(path.parent, made)
        try:
            os.mkdir(path)
        except OSError:  # FileExistsError where another process made it after its parent was made
            if not path.is_dir():
                raise
            return
    except OSError:  # FileExistsError where another made it (or it was there); else a folder it cannot be
        if not path.is_dir():
            raise
        return
    made.append(Path(os.path.realpath(path)))


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of `path` to write to; renamed over `path` on success. A `path` that is a
    symbolic link keeps it: the file it points to is the one replaced."""
    path = Path(path)
    if path.is_symlink():  # renamed over, the link became a file and the linked file stayed as it was
        path = Path(os.path.realpath(path))
    if os.path.lexists(path) and not path.is_file():
        # A folder would refuse the rename only after the work; a device or FIFO (an output option given
        # /dev/null, a named pipe) would be replaced by a regular file, /dev/null included when run as root.
        from dpupose.errors import UsageError

        raise UsageError(
            f"{path} is {special_kind(path)}, not a file, and the output would take its place; give a file name"
        )
    make_dirs(path.parent)
    _remove_stale_temporaries(path, suffix)
    tmp: str | None = None
    try:
        # Ctrl-C or SIGTERM between the temporary's creation (inside mkstemp) and `tmp` naming it would leave
        # it behind: they are held back until the finally below can remove it.
        with signals_deferred():
            try:
                fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
            except OSError as exc:  # name the file the user chose, not the temporary one
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            os.close(fd)
            _WRITING.add(str(Path(tmp)))
        yield Path(tmp)
        _fsync(tmp, path)
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is None:  # mkstemp's, named above
            raise
        _raise_naming(exc, tmp, path)
    finally:
        if tmp is not None:
            if os.path.exists(tmp):
                os.unlink(tmp)
            _WRITING.discard(str(Path(tmp)))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` are one file or folder (device and inode), however named: through a link, `..`, a hard
    link, a bind mount of a folder above it, the other case of a name on a case-insensitive file system; the
    last two are names that resolve() and realpath do not tie together. False where either is missing."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def same_entry(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` are one name of one file or folder: the same file (same_file) under the same name (but for
    case) in the same folder (same_file of their folders): a name seen through a bind mount of a folder above it,
    or in the other case on a case-insensitive file system. A hard link under another name, in the same folder or
    elsewhere, is not: replacing one name's file (a rename over it) or removing it leaves the other's file as it
    was."""
    a, b = Path(a), Path(b)  # not made absolute: `link/..` is the folder above where the link leads
    return same_file(a, b) and same_file(a.parent, b.parent) and a.name.casefold() == b.name.casefold()


def within(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or lies inside it, however either is named: by real path (links, `..`), or by
    device and inode of `path` or a folder above it (same_file: a bind mount of `folder` or of a folder above it
    elsewhere, the other case of a name on a case-insensitive file system), which real paths do not tie together.
    `path` need not exist yet (an output to make)."""
    real, where = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    if real == where or where in real.parents:
        return True
    return os.path.isdir(where) and any(same_file(p, where) for p in (real, *real.parents))


_OWN_FD = re.compile(r"/(?:dev/fd|proc/(?:self|thread-self|(\d+))/fd)/(\d+)")


def _own_descriptor(path: Path) -> int | None:
    """The descriptor N of this process that the symbolic link `path` leads to, through links (/dev/stdout is one
    to /proc/self/fd/1), or None: none of them names /dev/fd/N or /proc/self/fd/N (or this process's PID's)."""
    hops = 0
    here = str(path)
    while hops < 40 and os.path.islink(here):
        here = os.path.join(os.path.dirname(os.path.abspath(here)), os.readlink(here))
        found = _OWN_FD.fullmatch(os.path.normpath(here))
        if found:
            return int(found[2]) if found[1] is None or int(found[1]) == os.getpid() else None
        hops += 1
    return None


def open_new(path: str | Path, buffered: bool = False) -> BinaryIO:
    """`path` opened for writing (binary; unbuffered unless `buffered`) as a new file, for an output written as
    it goes (a run's keypoints.jsonl, an image): a regular file already there is removed first, not emptied.
    Emptied and written in place, it changed every other name the file has: a hard link kept elsewhere (`ln
    OUT/keypoints.jsonl kept.jsonl`, a `cp -al` snapshot of the folder) lost what it held, where atomic_path's
    rename leaves it as it was. The new file gets the usual permissions (0666 less the umask), as atomic_path's
    do, not the earlier one's. A `path` that is a symbolic link keeps it, as in atomic_path: the regular file it
    points to is the one replaced. A file this process may not write (made read-only to keep it) is refused with
    PermissionError, as open() refused it, not removed. Anything else there, or at the link's end (a FIFO, a
    device, /dev/stdout: /proc's link to a pipe, 'pipe:[N]', which realpath reads as a name), is opened as it is,
    through the link. A link to one of this process's descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N) is
    that descriptor, duplicated, whatever it leads to: with stdout a file (`make hw > build.txt`, nohup's
    nohup.out) realpath named that file, which was removed and made again, all that was written to it lost."""
    path = Path(path)
    fd = _own_descriptor(path)
    if fd is not None:
        with suppress(OSError):  # not open: open() says why, as it did
            return os.fdopen(os.dup(fd), "wb", buffering=-1 if buffered else 0)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        if stat.S_ISREG(os.lstat(target).st_mode):
            if not os.access(target, os.W_OK):  # refused, as open() refused it: a file made read-only to keep it
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
            os.unlink(target)
            path = target  # made again at the link's end, the link kept
    except FileNotFoundError:  # nothing there, or a link to nothing: open() makes the file it names
        pass
    return open(path, "wb", buffering=-1 if buffered else 0)  # the caller closes it


def write_set(files: Iterable[tuple[str | Path, bytes]]) -> None:
    """Write files that belong together (one configuration's generated files, a dump of tensors), each given as
    (path, bytes), through atomic_path: every one is written and flushed to disk before the first is renamed
    into place, the renames held from Ctrl-C and SIGTERM, so a failure (a full disk) leaves the earlier set
    whole, not some new files beside the earlier others, and no temporary; its error names the file that did
    not fit. `files` may be a generator: one file's bytes are held at a time."""
    with ExitStack() as deferred, ExitStack() as stack:
        written = []
        for path, data in files:
            tmp = stack.enter_context(atomic_path(path))  # a write that fails is named by this, the innermost
            with open(tmp, "wb") as f:
                f.write(data)
            written.append((tmp, path))
        # Every file reaches the disk before the first rename (the contexts rename in turn as they close): a
        # sync that fails, as NFS reports a full disk, must not come after another file is in place.
        for tmp, path in written:
            sync_file(tmp, path)
        deferred.enter_context(signals_deferred())  # closes after `stack`: after the last rename


def special_kind(path: str | Path) -> str:
    """What an existing path that is no regular file is, as a phrase ('a folder', 'a device', 'a FIFO', ...),
    for the refusals of one where a file goes."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def dangling_link(path: str | Path) -> str:
    """The one phrase for a symbolic link that leads nowhere (its target missing, or a link back to itself):
    'a symbolic link that leads nowhere (to TARGET)', TARGET as the link holds it (os.readlink), or without it
    where it cannot be read. Every refusal of such a link says this (not_a_file, what_is_at, not_a_folder, run's
    --source), so one case reads one way wherever it is met."""
    try:
        return f"a symbolic link that leads nowhere (to {os.readlink(path)})"
    except (OSError, ValueError):  # gone since, or not a link after all
        return "a symbolic link that leads nowhere"


def not_a_file(path: str | Path, missing: str = "no such file") -> str:
    """Why `path`, given as a file to read, is none: 'is a folder', 'is a FIFO' (a device, ...: special_kind), 'is
    a symbolic link that leads nowhere (to TARGET)' (dangling_link: its target missing, or back to itself), else
    `missing`. A FIFO or /dev/null was reported as no such file, though the user can see it there."""
    path = Path(path)
    try:
        if path.is_dir():
            return "is a folder"
        if path.exists():
            return f"is {special_kind(path)}"
        if path.is_symlink():
            return f"is {dangling_link(path)}"
    except OSError:  # a name too long, a folder that cannot be searched: the caller's own words
        pass
    return missing


def what_is_at(path: str | Path) -> str:
    """What is at `path`, as a phrase for a refusal of the wrong kind of entry at a folder's (or a file's) name:
    'a link to TARGET' (a symbolic link that leads somewhere), 'a symbolic link that leads nowhere (to TARGET)'
    (dangling_link), 'a folder',
    'a file', 'a FIFO' or 'a device' (special_kind), or 'nothing'. One phrase per case, so that the messages
    that name what is where a folder goes say the same thing of the same entry."""
    path = Path(path)
    try:
        if path.is_symlink():
            return f"a link to {os.readlink(path)}" if path.exists() else dangling_link(path)
        if path.is_dir():
            return "a folder"
        if path.is_file():
            return "a file"
        return special_kind(path) if path.exists() else "nothing"
    except OSError:  # a name too long, a folder that cannot be searched
        return "something that cannot be examined"


def not_a_folder(path: str | Path, missing: str = "does not exist") -> str:
    """Why `path`, given as a folder to read (a data root, --quantized), is none: 'is WHAT, not a folder' with
    what is there (what_is_at: a file, a FIFO, a link to a file, a symbolic link that leads nowhere), else
    `missing`; not_a_file's counterpart. A link that leads nowhere was 'does not exist', though the user sees it
    there."""
    what = what_is_at(path)
    return missing if what == "nothing" else f"is {what}, not a folder"


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the block, then deliver the first that came to the handler there was:
    one arriving between two writes of a set of files (a generated build set, the demo's report) would leave
    one file of the new set beside the earlier set's others. Only the main thread can set handlers; elsewhere
    the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    # A handler installed from C (getsignal: None) could not be put back from Python: that signal is left as it is.
    signums = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda signum, _frame: noted.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if noted:
            signal.raise_signal(noted[0])


def check_can_create(path: str | Path) -> None:
    """Raise OSError naming `path` now, not after minutes of work, when nothing can be created where it would
    go (a read-only or pseudo file system, a file where a folder is needed); creates nothing that stays."""
    path = Path(os.path.abspath(path))
    parent = path.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{parent} is {what_is_at(parent)}, not a folder")
        # Ctrl-C or SIGTERM after mkdtemp made the probe and before its removal would leave it: held back.
        with signals_deferred():
            os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".probe", dir=parent))
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


# The most of an existing output a command reads to tell whether it wrote it (an earlier result, which it may
# replace): such results are small JSON files.
OWN_JSON_LIMIT = 64 << 20


def loads_json(text: str | bytes) -> Any:
    """json.loads, where JSON nested deeper than Python's parser goes (its recursion limit, about 1000 levels: a
    file of a few kilobytes of '[') is the JSONDecodeError, a ValueError, that any other invalid JSON gets, so
    that the reader's own message names the file, not a RecursionError's traceback. Every JSON dpupose reads is
    read with it."""
    try:
        return json.loads(text)
    except RecursionError:
        doc = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        raise json.JSONDecodeError("nested deeper than can be read", doc, 0) from None


def read_own_json(path: str | Path) -> Any:
    """The JSON in `path` when it is a regular file of at most OWN_JSON_LIMIT bytes that parses, else None.
    Nothing else is read: a device (/dev/full and /dev/zero read zeros for ever: `bench --out /dev/full` took
    all the memory it could, then stopped with a MemoryError traceback), a FIFO (would block) or a huge file."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > OWN_JSON_LIMIT:
            return None
        return loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def refuse_current_folder(path: str | Path) -> Path:
    """`path` made absolute; UsageError if it is the current folder or holds it (a folder replaced whole
    would be pulled from under the shell standing in it), by any name (within): through a link above it as well
    (`--out ../link/NAME`, the link to the folder above this one), or a bind mount."""
    path = Path(os.path.abspath(path))
    if within(Path.cwd(), path):
        from dpupose.errors import UsageError

        raise UsageError(
            f"{path} is the current folder or holds it; replacing it would pull it from under the shell: "
            "give a folder name below it"
        )
    return path


@contextmanager
def _parent_locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock) on the folder holding `path` for the block: atomic_dir's swap (is a
    folder there? move it aside, rename the new one in) is two renames, and two processes writing the same
    folder at once (two `make demo`s, two commands filling one cache entry) would each find it missing and
    the second rename fail (Directory not empty), or one move aside the folder the other just put in place.
    Under the lock the swaps take turns: each is a few renames, and the last one's folder stays, whole. A
    file system that takes no lock on a folder goes unlocked, as before."""
    import fcntl

    fd: int | None = None
    try:
        try:
            with signals_deferred():  # as in lock_folder: until `fd` names it, for the finally to close it
                fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.debug("no lock on %s (%s): its swap is not serialized", path.parent, exc)
        yield
    finally:
        if fd is not None:
            os.close(fd)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; on success it replaces `path` (an existing folder there is
    removed only after the new one is in place), on failure it disappears and `path` is untouched. A `path`
    that is a symbolic link keeps it: the folder it points to is the one replaced."""
    path = refuse_current_folder(path)
    if path.is_symlink():  # replaced itself, the link became a folder and the old one a stray .old-PID-XXXXXXXX link
        path = refuse_current_folder(os.path.realpath(path))
    make_dirs(path.parent)
    _remove_stale_old(path)
    _remove_stale_temporaries(path, ".tmp")
    tmp: Path | None = None
    try:
        with signals_deferred():  # as in atomic_path: until `tmp` names the new folder, for the finally to remove it
            try:
                tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            except OSError as exc:  # name the folder the user chose, not the temporary one
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            _WRITING.add(str(tmp))
        try:
            yield tmp
        except OSError as exc:
            _raise_naming(exc, tmp, path)
        umask = current_umask()
        entries = [tmp, *tmp.rglob("*")]
        _fsync_all([p for p in entries if p.is_file() and not p.is_symlink()], path)
        for p in entries:  # mkdtemp/mkstemp create owner-only entries
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
                # A link's target, or a file hard-linked in (hw build's previous/ links the published files),
                # has its own mode, shared with its other names: not the temporary's, and maybe not ours to set.
                continue
            os.chmod(p, (0o777 if stat.S_ISDIR(st.st_mode) else 0o666) & ~umask)
        old: Path | None = None
        try:
            with _parent_locked(path):  # another process's swap into `path` waits (see _parent_locked)
                old = _old_name(path) if path.exists() else None
                try:
                    if old is not None:
                        _WRITING.add(str(old))  # another thread's _remove_stale_old leaves it
                        os.replace(path, old)
                    os.replace(tmp, path)
                except BaseException:  # the new folder is not in place: the old one goes back
                    if old is not None and old.exists() and not path.exists():
                        os.replace(old, path)
                    raise
        finally:
            # Once the new folder is in place (its temporary name gone) the old one goes, however this ends: Ctrl-C
            # or SIGTERM as the lock was let go left it, and one mid-removal is finished.
            try:
                if old is not None and not tmp.exists():
                    try:
                        shutil.rmtree(old, ignore_errors=True)
                    except BaseException:
                        shutil.rmtree(old, ignore_errors=True)
                        raise
            finally:
                if old is not None:
                    _WRITING.discard(str(old))
    finally:
        if tmp is not None:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            _WRITING.discard(str(tmp))


# What flock answers on a file system that takes no lock (NFS without its lock service: ENOLCK).
_NO_LOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP)


HOLDER_PID_BYTES = 64  # what earlier versions read of a lock file, the holder's PID (stripped)


def _holder_lines(fd: int) -> tuple[str | None, str | None]:
    """(PID, command) as the holder of the lock file `fd` wrote them there (_mark_holder), each None when not
    written (a full disk; an earlier version wrote the PID only) or unreadable."""
    lines = os.pread(fd, 256, 0).decode("utf-8", "replace").split("\n")
    pid, command = lines[0].strip(), lines[1].strip() if len(lines) > 1 else ""
    return (pid if pid.isascii() and pid.isdigit() else None), (command or None)


def _lock_holder(fd: int) -> str:
    """Who holds the lock on the lock file `fd`: 'process PID', as the holder wrote it there (_mark_holder),
    or 'another process' when it wrote nothing readable."""
    pid = _holder_lines(fd)[0]
    return f"process {pid}" if pid is not None else "another process"


def _mark_holder(fd: int, command: str | None = None) -> None:
    """Write this process's PID, and the `command` it runs, into the lock file `fd` it has just locked, for the
    next one to name. They only name the holder: a write that fails (a full disk or quota) leaves the file empty,
    which the next one names 'another process', and the lock held. Raised, its error named no file (a write's),
    and it came before the command's first output, whose failure names that output and removes a folder the
    command made. The command comes after the first HOLDER_PID_BYTES, the PID's line padded with blanks: an
    earlier version reads those bytes, stripped, as the PID, and named a holder whose command followed it at once
    'another process'."""
    text = f"{os.getpid()}\n"
    if command:  # on the next line, after the blanks that fill HOLDER_PID_BYTES
        text = text.ljust(HOLDER_PID_BYTES) + f"{command}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError as exc:
        log.debug("could not write the lock holder's PID: %s", exc)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the lock file `fd`, just locked, is still the file at `path`. A holder that removes its lock
    file (lock_output_folder's clean-up of a refused run) leaves a process that opened it before with a lock on
    a file no one else will open, while the next process creates a new one at that name and locks it: both
    would go on. Such a lock is worth nothing; its taker opens the file at `path` again."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


@contextmanager
def lock_folder(
    folder: str | Path, command: str, option: str = "--out", make: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (an existing folder) for the block: a second `command` writing
    into it at once would mix its files with this one's (two runs' checkpoints, config and history in one
    folder). UsageError naming the process that holds it, and its command where it is another kind (written
    beside its PID). The lock is a BSD lock (flock) on the hidden file `.dpupose.lock` there, released when the
    block ends or the process dies (the file stays, unlocked). A block that fails (an error, a refusal, Ctrl-C)
    removes the lock file when this call made it, while the lock is still held: a refused command leaves a
    folder of the user's as it found it (a lock file that was there stays). A file system that takes no lock
    (NFS without its lock service: ENOLCK) gets a warning, and the block runs unlocked, as before there was a
    lock; so does a read-only one, quietly (nothing can write there). A lock taken on a lock file that its
    holder removed meanwhile is no lock (_still_at): it is taken again on the file there now, `make` (when
    given) making the folder again first, as it does when that holder removed the folder itself before the
    lock file's open."""
    import fcntl

    from dpupose.errors import UsageError

    folder = Path(folder)
    path = folder / ".dpupose.lock"
    while True:
        if make is not None:
            make()
        fd: int | None = None
        try:
            try:
                # Ctrl-C or SIGTERM as os.open returned, before `fd` named the descriptor, lost it (open for the
                # life of the process, a notebook's): held back until the finally below can close it.
                with signals_deferred():
                    try:  # made by this call (for a failed block to remove), or there already
                        fd, made = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), True
                    except FileExistsError:
                        fd, made = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), False
            except OSError as exc:
                if exc.errno == errno.ENOENT and make is not None:
                    continue  # another command's clean-up removed the folder after `make` found it: made again
                if exc.errno == errno.EISDIR:  # 'cannot use FOLDER: Is a directory' said nothing of what was wrong
                    raise UsageError(
                        f"{option} {folder} holds a folder named .dpupose.lock, the name of the lock file dpupose "
                        f"keeps there: move that folder elsewhere, or choose another {option}"
                    ) from None
                if exc.errno != errno.EROFS:  # name the folder the user gave
                    raise type(exc)(exc.errno, exc.strerror, str(folder)) from None
                # A read-only file system: no one writes into the folder, so there is no writer to refuse; the
                # command fails at its first write with its own message, or writes nothing (a finished --resume).
                yield
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _holder_lines(fd)[1]  # another kind of command (a demo into a run's --out), or this one's
                who = f"another `{command}`" if other in (None, command) else f"`{other}`"
                raise UsageError(
                    f"{option} {folder} is in use by {who} ({_lock_holder(fd)}): wait for it to end, or choose "
                    f"another {option}"
                ) from None
            except OSError as exc:
                if exc.errno not in _NO_LOCK:
                    raise type(exc)(exc.errno, exc.strerror, str(folder)) from None
                log.warning(
                    "%s %s: its file system takes no lock (%s): another `%s` writing into it at once would not "
                    "be refused",
                    option,
                    folder,
                    exc.strerror,
                    command,
                )
            else:
                if not _still_at(fd, path):
                    continue  # its holder removed it (the finally closes it): lock the one there now
                _mark_holder(fd, command)
            try:
                yield
            except BaseException:
                # Still held and still the file at its name (lock_output_folder's clean-up may have removed it,
                # and another command made a new one there since): no other command's lock is taken away.
                if made and _still_at(fd, path):
                    with suppress(OSError):
                        path.unlink()
                raise
            return
        finally:
            if fd is not None:
                os.close(fd)


@contextmanager
def lock_output_folder(folder: str | Path, command: str, option: str = "--out") -> Iterator[None]:
    """Make `folder` (and its missing parents) and hold lock_folder on it for the block, before any work: a
    second `command` is refused before either spends minutes. A run refused later (an error or Ctrl-C in the
    block) that made the folder and wrote nothing into it leaves no trace: the folder, its lock file and the
    parents this call made are removed, while the lock is still held (a second command's lock is never taken
    away: one that opened the lock file before its removal locks the new one, see _still_at). A folder that
    was there, or holds anything else, stays (less the lock file, when lock_folder made it)."""
    folder = Path(folder)
    made: list[Path] = []  # the folders this call makes, the innermost first (through a link: where it leads)

    def make() -> None:  # again when another run's clean-up removed the folder as this one took its lock
        # Made again, the folders new to the list are above those made before (the clean-up removed folders
        # below them first): kept innermost first, deepest first, for the rmdir below to begin at the folder.
        made.extend(p for p in make_dirs(folder) if p not in made)
        made.sort(key=lambda p: len(p.parts), reverse=True)

    with lock_folder(folder, command, option, make=make):
        try:
            yield
        except BaseException:
            if made and _holds_only_lock(folder):
                with suppress(OSError):
                    (folder / ".dpupose.lock").unlink(missing_ok=True)
                    for p in made:  # rmdir: an empty folder only (stops at one that holds anything)
                        p.rmdir()
            raise


def _holds_only_lock(folder: Path) -> bool:
    try:
        return {entry.name for entry in os.scandir(folder)} <= {".dpupose.lock"}
    except OSError:  # unreadable: kept as it is
        return False


@contextmanager
def cache_lock(entry: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry `entry` (a folder under build/, made on first use) while it
    is checked and made: a second process that finds it missing at the same time waits here for the first,
    then finds it made and uses it, instead of making it again (minutes: a quantization, a data set) and
    replacing the folder the first is reading from (a training reads its images for hours). The lock is a
    BSD lock (flock) on the hidden file `.NAME.lock` beside the entry, released when the block ends or the
    process dies; the file stays. The wait is logged with the holder's PID. A file system that takes no lock
    goes unlocked (each process makes its own copy, and the last one in place stays)."""
    import fcntl

    entry = Path(entry)
    path = entry.with_name(f".{entry.name}.lock")
    while True:
        fd: int | None = None
        try:
            try:
                entry.parent.mkdir(parents=True, exist_ok=True)
                with signals_deferred():  # as in lock_folder: until `fd` names it, for the finally to close it
                    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES) and entry.is_dir():
                    # A cache made earlier on a file system this process cannot write (a read-only container,
                    # another user's checkout): no one makes the entry here, so there is no one to wait for; it
                    # is used as it is.
                    yield
                    return
                raise type(exc)(exc.errno, exc.strerror, str(entry)) from None
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("waiting for %s, which is making %s", _lock_holder(fd), entry)
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in _NO_LOCK:
                    raise type(exc)(exc.errno, exc.strerror, str(entry)) from None
                log.debug("no lock on %s (%s)", path, exc.strerror)
            else:
                if not _still_at(fd, path):
                    continue  # removed while this process waited (make clean): lock the one there now
                _mark_holder(fd)
            yield
            return
        finally:
            if fd is not None:
                os.close(fd)


def check_replaceable(out: Path, marker: str, written: Iterable[str], what: str, option: str = "--out") -> None:
    """Refuse (UsageError) to replace `out` unless it is missing, empty, or `what` (a folder holding
    `marker`) that holds nothing but `marker` and the files it lists as written (`written`, relative
    paths): replacing a folder deletes everything in it, so a user's own file there must stop the command."""
    from dpupose.errors import UsageError, shortlist

    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out} is {what_is_at(out)}, not a folder; choose another {option}")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if marker not in entries:
        raise UsageError(f"{out} exists and is not {what} (it has no {marker}); choose another {option}")
    ours = {marker} | {Path(w).parts[0] for w in written if w}
    extra = [e for e in entries if e not in ours]
    if extra:
        shown = shortlist(extra)
        raise UsageError(
            f"{out} is {what}, but also holds {shown}, which replacing it would delete: move "
            f"{'it' if len(extra) == 1 else 'them'} elsewhere, or choose another {option}"
        )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's contents, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # atomic_path syncs it before the rename
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """`value` with every float that is not a finite number (NaN, Infinity, -Infinity) replaced by None, in
    dicts, lists and tuples at any depth. Python's json writes those as the bare words NaN and Infinity,
    which are not JSON: a script's parser (jq, JavaScript, a strict json.loads) refuses the whole file."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_text(data: Any, indent: int | None = None) -> str:
    """`data` as standard JSON text (no newline at the end): a figure that is not a finite number is null
    (json_safe), so every file and --json output dpupose writes parses anywhere."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False)


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    return write_text(path, json_text(data, indent=indent) + "\n")
