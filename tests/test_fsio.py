"""Atomic output: the destination is either the old file or the whole new one."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dpupose.fsio import (
    OWN_JSON_LIMIT,
    atomic_dir,
    atomic_path,
    check_can_create,
    json_text,
    loads_json,
    moved_aside,
    not_a_file,
    read_own_json,
    sha256_file,
    what_is_at,
    write_json,
    write_text,
)

pytestmark = pytest.mark.board_py


def test_success_replaces_with_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_text(path, "old")
    write_text(path, "new")
    assert path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(path.parent) == ["out.txt"]  # no temporary file left


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "plan.json"
    write_json(path, {"version": 1})
    with pytest.raises(RuntimeError, match="^crash while writing$"), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == '{\n  "version": 1\n}\n'
    assert os.listdir(tmp_path) == ["plan.json"]


def test_a_file_given_by_a_link_is_replaced_and_the_link_kept(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "v1.pt").write_text("old")
    link = tmp_path / "current.pt"
    link.symlink_to(os.path.join("models", "v1.pt"))
    write_text(link, "new")
    assert os.readlink(link) == os.path.join("models", "v1.pt") and link.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["current.pt", "models"] and os.listdir(tmp_path / "models") == ["v1.pt"]


def test_a_folder_given_by_a_link_is_replaced_and_the_link_kept(tmp_path):
    # The link itself was replaced: a new folder in its place, the linked folder stale, a .plan.old-PID-XXXXXXXX
    # link left.
    (tmp_path / "plans" / "v1").mkdir(parents=True)
    (tmp_path / "plans" / "v1" / "old.onnx").write_text("old")
    link = tmp_path / "plan"
    link.symlink_to(os.path.join("plans", "v1"))
    with atomic_dir(link) as tmp:
        (tmp / "new.onnx").write_text("new")
    assert os.readlink(link) == os.path.join("plans", "v1")
    assert [p.name for p in (tmp_path / "plans" / "v1").iterdir()] == ["new.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["plan", "plans"] and os.listdir(tmp_path / "plans") == ["v1"]


def test_a_link_that_leads_nowhere_yet_is_written_through_as_the_link_says(tmp_path):
    """An output (or the folder of one) given as a symbolic link that leads nowhere yet: what the link names is
    made, folders above it too, and the link stays. Inside such a folder mkdir refused the link ('File exists':
    `dpu files --out LINK`), where a file or folder given as the link itself was written through."""
    from dpupose.fsio import lock_output_folder, make_dirs

    (tmp_path / "out").symlink_to(os.path.join("elsewhere", "out"))
    write_text(tmp_path / "out" / "a.txt", "a")  # atomic_path, into the folder the link names
    assert (tmp_path / "elsewhere" / "out" / "a.txt").read_text() == "a"
    (tmp_path / "plan").symlink_to(os.path.join("plans", "v1"))
    with atomic_dir(tmp_path / "plan" / "sub") as tmp:
        (tmp / "p.onnx").write_text("p")
    assert (tmp_path / "plans" / "v1" / "sub" / "p.onnx").read_text() == "p"
    (tmp_path / "run").symlink_to(os.path.join("runs", "r1"))
    with lock_output_folder(tmp_path / "run", "test"):
        (tmp_path / "run" / "keypoints.jsonl").write_text("k")
    assert (tmp_path / "runs" / "r1" / "keypoints.jsonl").read_text() == "k"
    assert [os.readlink(tmp_path / name) for name in ("out", "plan", "run")] == [
        os.path.join("elsewhere", "out"),
        os.path.join("plans", "v1"),
        os.path.join("runs", "r1"),
    ]
    (tmp_path / "file").write_text("mine")  # no link: a file where a folder is needed is still refused
    with pytest.raises(FileExistsError) as plain:
        make_dirs(tmp_path / "file")
    assert plain.value.filename == str(tmp_path / "file") and "symbolic link" not in str(plain.value)  # there is none
    (tmp_path / "to-file").symlink_to("file")  # nor is one a link leads to
    with pytest.raises(FileExistsError, match=r"the symbolic link there leads to .*file") as linked:
        make_dirs(tmp_path / "to-file")
    assert linked.value.filename == str(tmp_path / "to-file")  # the path given, its link's end in the message
    # A link that leads below a file: the error keeps its kind and names the path given and where the link leads.
    (tmp_path / "under-file").symlink_to(os.path.join("file", "sub"))
    with pytest.raises(NotADirectoryError) as under:
        make_dirs(tmp_path / "under-file")
    assert under.value.filename == str(tmp_path / "under-file")
    assert under.value.strerror.endswith(f"(the symbolic link there leads to {tmp_path / 'file' / 'sub'})")
    assert (tmp_path / "file").read_text() == "mine"
    with pytest.raises(NotADirectoryError):
        make_dirs(tmp_path / "to-file" / "sub")
    assert (tmp_path / "file").read_text() == "mine"


def test_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "plan"
    with atomic_dir(out) as tmp:
        (tmp / "a.onnx").write_text("first")
        (tmp / "sub").mkdir()
    with pytest.raises(RuntimeError, match="^crash while writing$"), atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("half")
        raise RuntimeError("crash while writing")
    assert sorted(p.name for p in out.iterdir()) == ["a.onnx", "sub"]  # the first folder, untouched
    with atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("second")
    assert [p.name for p in out.iterdir()] == ["b.onnx"]  # nothing of the old folder mixed in
    assert os.listdir(tmp_path) == ["plan"]  # no temporary or old folder left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((out / "b.onnx").stat().st_mode) == 0o666 & ~umask


def test_written_bytes_reach_the_disk_before_the_rename(tmp_path, disk_events):
    events = disk_events
    path = tmp_path / "best.json"
    write_json(path, {"epoch": 3})
    (_, synced), (_, renamed, dst) = events
    assert synced == renamed == path.stat().st_ino and dst == str(path)

    # A writer that never syncs (torch.save, onnx.save, cv2) is synced by atomic_path itself.
    events.clear()
    other = tmp_path / "model.onnx"
    with atomic_path(other) as tmp:
        tmp.write_bytes(b"onnx")
    (_, synced), (_, renamed, dst) = events
    assert synced == renamed == other.stat().st_ino and dst == str(other)

    # And every file of a folder replaced whole, before the folder is renamed into place.
    events.clear()
    folder = tmp_path / "plan"
    with atomic_dir(folder) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "plan.json").write_text("{}")
        (tmp / "sub" / "dpu0.onnx").write_bytes(b"x")
    *syncs, last = events
    assert last[0] == "replace" and last[2] == str(folder)
    inodes = {(folder / "plan.json").stat().st_ino, (folder / "sub" / "dpu0.onnx").stat().st_ino}
    assert [e[0] for e in syncs] == ["fsync", "fsync"] and {e[1] for e in syncs} == inodes

    # A folder of many files (a generated data set) is synced from several threads: still every file, and
    # all before the rename.
    events.clear()
    with atomic_dir(folder) as tmp:
        for i in range(40):
            (tmp / f"{i}.jpg").write_bytes(b"x" * i)
    *syncs, put_aside, last = events  # the earlier folder is moved aside, then the new one put in place
    assert put_aside[0] == last[0] == "replace" and last[2] == str(folder)
    assert {e[0] for e in syncs} == {"fsync"} and len(syncs) == 40
    assert sorted(e[1] for e in syncs) == sorted(p.stat().st_ino for p in folder.iterdir())


def test_an_fsync_error_among_many_files_names_the_output(tmp_path, monkeypatch):
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 17:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(os, "fsync", fsync)
    with (
        pytest.raises(OSError, match=f"Disk quota exceeded: '{tmp_path / 'root'}'"),
        atomic_dir(tmp_path / "root") as tmp,
    ):
        for i in range(30):
            (tmp / f"{i}.jpg").write_text("x")
    assert os.listdir(tmp_path) == []


def test_an_old_folder_left_by_a_killed_process_is_removed(tmp_path):
    # A process killed between putting its new folder in place and removing the old one leaves
    # .NAME.old-PID-XXXXXXXX (8 hex digits).
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    (tmp_path / f".plan.old-{dead.pid}-0a1b2c3d").mkdir()
    (tmp_path / f".plan.old-{dead.pid}-0a1b2c3d" / "a.onnx").write_text("old")
    (tmp_path / f".plan.old-{os.getppid()}-0a1b2c3d").mkdir()  # a running process's: left alone
    (tmp_path / ".planb.old-1-0a1b2c3d").mkdir()  # another folder's
    with atomic_dir(tmp_path / "plan") as tmp:
        (tmp / "b.onnx").write_text("new")
    assert sorted(os.listdir(tmp_path)) == [f".plan.old-{os.getppid()}-0a1b2c3d", ".planb.old-1-0a1b2c3d", "plan"]


@pytest.mark.parametrize("plan_there", [True, False])
def test_a_users_hidden_folder_of_an_old_folder_s_like_name_stays(tmp_path, plan_there):
    """The earlier folder moved aside was `.NAME.old-PID`, and any `.NAME.old-DIGITS` whose DIGITS no running
    process has was taken for one a killed write left: a user's hidden `.plan.old-2019` beside plan was
    removed at the next write of plan, or, with no plan there, moved into its place. Only
    `.NAME.old-PID-XXXXXXXX` (8 hex digits) is one now; an earlier version's `.NAME.old-PID` stays too."""
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    theirs = [
        ".plan.old-2019",
        f".plan.old-{dead.pid}",
        f".plan.old-{dead.pid}-backup",
        f".plan.old-{dead.pid}-0A1B2C3D",
        f".plan.old-{dead.pid}-0a1b2c3d4",
        f".plan.old-{dead.pid}-0a1b2c3d-x",
        f".plan.old-0{dead.pid}-0a1b2c3d",
        ".plan.old--0a1b2c3d",
    ]
    for name in theirs:
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text(name)
    if plan_there:
        (tmp_path / "plan").mkdir()
        (tmp_path / "plan" / "a.onnx").write_text("earlier")
    ours = tmp_path / f".plan.old-{dead.pid}-0a1b2c3d"  # a killed write's
    ours.mkdir()
    # A file and a link to a folder elsewhere at a killed write's name: no folder atomic_dir moved aside, neither
    # put in plan's place nor removed (what the link points to included).
    (tmp_path / f".plan.old-{dead.pid}-0a1b2c3e").write_text("a file")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("elsewhere")
    (tmp_path / f".plan.old-{dead.pid}-0a1b2c3f").symlink_to(tmp_path / "elsewhere")
    theirs += [f".plan.old-{dead.pid}-0a1b2c3e", f".plan.old-{dead.pid}-0a1b2c3f", "elsewhere"]
    assert moved_aside(tmp_path / "plan") == [(ours, str(dead.pid))]
    with pytest.raises(RuntimeError, match="^the new write fails$"), atomic_dir(tmp_path / "plan") as tmp:
        (tmp / "b.onnx").write_text("half")
        raise RuntimeError("the new write fails")
    assert sorted(os.listdir(tmp_path)) == sorted([*theirs, "plan"])
    assert (tmp_path / f".plan.old-{dead.pid}-0a1b2c3e").read_text() == "a file"
    assert (tmp_path / f".plan.old-{dead.pid}-0a1b2c3f").is_symlink()
    assert all((tmp_path / name / "notes.txt").read_text() == name for name in theirs[:-3])
    assert (tmp_path / "elsewhere" / "notes.txt").read_text() == "elsewhere"
    # With plan there, the killed write's aside folder was an older one: removed. Without, it was put back.
    assert os.listdir(tmp_path / "plan") == (["a.onnx"] if plan_there else [])
    with atomic_dir(tmp_path / "plan") as tmp:
        (tmp / "b.onnx").write_text("new")
    assert sorted(os.listdir(tmp_path)) == sorted([*theirs, "plan"]) and os.listdir(tmp_path / "plan") == ["b.onnx"]


def _killed_while_writing(out, kind):
    """A process that is SIGKILLed inside atomic_dir/atomic_path for `out`, its temporary half written."""
    code = (
        "import os, sys, time\n"
        "from dpupose.fsio import atomic_dir, atomic_path\n"
        f"with ({kind})({str(out)!r}) as tmp:\n"
        "    target = tmp / 'half.bin' if tmp.is_dir() else tmp\n"
        "    target.write_bytes(b'x' * 4096)\n"
        "    print('written', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "written\n"
    proc.kill()
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["atomic_dir", "atomic_path"])
def test_a_temporary_left_by_a_killed_process_goes_at_the_next_write(tmp_path, kind):
    # kill -9 (or the OOM killer) inside the block leaves the temporary, a data set's gigabytes for a
    # folder: the next write of the same output removes it; a running process's and other outputs' stay.
    out = tmp_path / "out"
    _killed_while_writing(out, kind)
    left = [name for name in os.listdir(tmp_path) if name.startswith(".out.")]
    assert len(left) == 1 and left[0].endswith(".tmp")
    running = tmp_path / f".out.{os.getppid()}-abcdefgh.tmp"
    running.mkdir()
    other = tmp_path / ".outb.1-abcdefgh.tmp"
    other.write_text("another output's")
    with globals()[kind](out) as tmp:
        (tmp / "new.bin" if tmp.is_dir() else tmp).write_bytes(b"new")
    assert sorted(os.listdir(tmp_path)) == sorted([running.name, other.name, "out"])


@pytest.mark.parametrize("kind", ["atomic_dir", "atomic_path"])
def test_a_users_hidden_file_of_a_temporary_s_like_name_stays(tmp_path, kind):
    """A stale temporary was any `.NAME.DIGITS-WORD` + suffix whose DIGITS no running process has: a user's
    hidden `.out.2024-backup.tmp` beside the output (2024 read as a dead process's id) was removed at the
    next write. Only tempfile's 8 characters (lower-case letters, digits, _) make a temporary's name."""
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    out = tmp_path / "out"
    theirs = [f".out.{dead.pid}-{rest}.tmp" for rest in ("backup", "Backup12", "my-notes", "2024-01-01", "abcdefghi")]
    for name in theirs:
        (tmp_path / name).write_text("mine")
    ours = tmp_path / f".out.{dead.pid}-ab_9xyz0.tmp"
    ours.write_text("a killed write's")
    with globals()[kind](out) as tmp:
        (tmp / "new.bin" if tmp.is_dir() else tmp).write_bytes(b"new")
    assert sorted(os.listdir(tmp_path)) == sorted([*theirs, "out"])
    assert all((tmp_path / name).read_text() == "mine" for name in theirs)


def test_a_hidden_file_named_with_other_digits_is_no_process_s(tmp_path):
    """left_by_dead_process took any str.isdigit() text for a PID, and int() refuses most of those ('²'): a
    user's hidden `.sd.img.².partial` beside the image `board stage` writes stopped it with a ValueError's
    traceback. Such text is no PID; the file stays, and a killed stage's copy still goes."""
    from dpupose.fsio import remove_stale_partials

    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    dest = tmp_path / "sd.img"
    for name in (".sd.img.²-0123abcd.partial", ".sd.img.٣-0123abcd.partial", f".sd.img.{dead.pid}-0123abcd.partial"):
        (tmp_path / name).write_text("x")
    remove_stale_partials(dest)
    assert sorted(os.listdir(tmp_path)) == [".sd.img.²-0123abcd.partial", ".sd.img.٣-0123abcd.partial"]


def test_a_hidden_file_named_with_a_number_too_large_for_a_pid_stays(tmp_path):
    """A number of more digits than a PID has ('202401011200', a date and time) was handed to os.kill, whose
    OverflowError's traceback stopped every write beside such a file of a user's: `.model.pt.202401011200-snapshot.tmp`
    (tempfile's 8 characters: a temporary's form), `.plan.old-202401011200-0a1b2c3d`,
    `.sd.img.2147483648-0123abcd.partial`. No process has such a PID (Linux's at most 2**22): the files stay, and
    the writes go on."""
    from dpupose.fsio import remove_stale_partials

    names = [".model.pt.202401011200-snapshot.tmp", ".sd.img.2147483648-0123abcd.partial"]
    for name in names:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".plan.old-202401011200-0a1b2c3d").mkdir()
    write_json(tmp_path / "model.pt", {"a": 1})
    with atomic_dir(tmp_path / "plan") as tmp:
        (tmp / "a.onnx").write_text("new")
    remove_stale_partials(tmp_path / "sd.img")
    expected = [*names, ".plan.old-202401011200-0a1b2c3d", "model.pt", "plan"]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    assert all((tmp_path / name).read_text() == "mine" for name in names)


@pytest.mark.parametrize("kind", ["atomic_dir", "atomic_path"])
def test_a_temporary_of_this_pid_goes_unless_this_process_is_writing_it(tmp_path, kind):
    # A container's command has the same PID at every start: the temporary a killed one left carries this
    # process's PID, and only the ones this process is writing now stay (here, a nested write of `out`).
    out = tmp_path / "out"
    left = tmp_path / f".out.{os.getpid()}-abcdefgh.tmp"
    left.mkdir() if kind == "atomic_dir" else left.write_bytes(b"left")
    write = globals()[kind]
    with write(out) as first:
        assert not left.exists()
        with write(out) as second:
            (second / "new.bin" if second.is_dir() else second).write_bytes(b"second")
        assert first.exists()
        (first / "new.bin" if first.is_dir() else first).write_bytes(b"first")
    assert os.listdir(tmp_path) == ["out"]
    assert ((out / "new.bin") if out.is_dir() else out).read_bytes() == b"first"


def test_an_earlier_folder_a_kill_left_moved_aside_is_put_back(tmp_path):
    # Killed between moving the earlier folder aside and putting the new one in place: only
    # .plan.old-PID-XXXXXXXX is left. The next writer puts it back first, so that its own failure leaves the
    # earlier output there.
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    (tmp_path / f".plan.old-{dead.pid}-89abcdef").mkdir()
    (tmp_path / f".plan.old-{dead.pid}-89abcdef" / "a.onnx").write_text("earlier")
    with pytest.raises(RuntimeError, match="^the new write fails$"), atomic_dir(tmp_path / "plan") as tmp:
        (tmp / "b.onnx").write_text("half")
        raise RuntimeError("the new write fails")
    assert os.listdir(tmp_path) == ["plan"] and (tmp_path / "plan" / "a.onnx").read_text() == "earlier"


def test_an_old_folder_with_this_process_s_pid_does_not_stop_the_write(tmp_path):
    # A container's processes get the same small PIDs at every start: the .NAME.old-PID-XXXXXXXX a killed one
    # left can carry the PID of the process that writes NAME next, and is as stale as any dead process's.
    out = tmp_path / "plan"
    with atomic_dir(out) as tmp:
        (tmp / "a.onnx").write_text("first")
    stale = tmp_path / f".plan.old-{os.getpid()}-01234567"
    stale.mkdir()
    (stale / "a.onnx").write_text("older")
    with atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("second")
    assert os.listdir(tmp_path) == ["plan"] and os.listdir(out) == ["b.onnx"]


def test_an_interrupt_while_the_old_folder_is_removed_still_removes_it(tmp_path, monkeypatch):
    out = tmp_path / "plan"
    with atomic_dir(out) as tmp:
        (tmp / "a.onnx").write_text("first")
    real_rmtree, interrupted = shutil.rmtree, []

    def rmtree(path, *args, **kwargs):
        if ".old-" in str(path) and not interrupted:
            interrupted.append(path)
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt), atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("second")
    assert interrupted and os.listdir(tmp_path) == ["plan"] and os.listdir(out) == ["b.onnx"]
    # The earlier folder was moved aside as .NAME.old-PID-XXXXXXXX, the form the clean-up takes.
    assert re.fullmatch(rf"\.plan\.old-{os.getpid()}-[0-9a-f]{{8}}", Path(interrupted[0]).name)


def test_a_folder_this_process_is_swapping_is_no_stale_old_folder(tmp_path, monkeypatch):
    # Another thread's write of the same output looks for stale folders moved aside while this one's swap
    # is between its renames: the folder carries this process's PID, which counts as stale, yet it is no
    # killed write's, and putting it back in place would fail the swap (the new folder's rename: not empty).
    from dpupose import fsio

    out = tmp_path / "plan"
    with atomic_dir(out) as tmp:
        (tmp / "a.onnx").write_text("first")
    real_replace, seen = os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        if Path(src) == out and not seen:  # the earlier folder just moved aside
            seen.append(dst)
            fsio._remove_stale_old(out)

    monkeypatch.setattr(os, "replace", replace)
    with atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("second")
    assert seen and os.listdir(tmp_path) == ["plan"] and os.listdir(out) == ["b.onnx"]


def test_a_failed_final_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "plan"
    with atomic_dir(out) as tmp:
        (tmp / "a.onnx").write_text("first")
    real_replace = os.replace

    def replace(src, dst):
        if ".tmp" in str(src):  # the new folder into place: fails (I/O error, or an interrupt)
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"), atomic_dir(out) as tmp:
        (tmp / "b.onnx").write_text("second")
    monkeypatch.undo()
    assert [p.name for p in out.iterdir()] == ["a.onnx"]
    assert os.listdir(tmp_path) == ["plan"]


def test_sha256_file_reads_past_its_block_size(tmp_path):
    data = bytes(range(256)) * 8193  # 2 MiB + 256 bytes: three blocks, the last one short
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_check_replaceable(tmp_path):
    from dpupose.errors import UsageError
    from dpupose.fsio import check_replaceable

    def check(folder):
        check_replaceable(folder, "mark.json", ["a.onnx", "sub/b.bin", ""], "an earlier result")

    check(tmp_path / "missing")  # nothing there: fine
    (tmp_path / "empty").mkdir()
    check(tmp_path / "empty")
    ours = tmp_path / "ours"
    (ours / "sub").mkdir(parents=True)
    for name in ("mark.json", "a.onnx", "sub/b.bin", "sub/c.bin"):  # inside a listed folder: ours
        (ours / name).write_text("x")
    check(ours)
    (ours / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"is an earlier result, but also holds notes\.txt, .* move it elsewhere"):
        check(ours)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UsageError, match=r"plain is a file, not a folder; choose another --out$"):
        check(tmp_path / "plain")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.onnx").write_text("x")
    with pytest.raises(UsageError, match=r"is not an earlier result \(it has no mark\.json\)"):
        check(tmp_path / "other")


def test_what_is_at_a_folders_name_is_named_as_hw_build_names_it(tmp_path, monkeypatch):
    """A FIFO, or a link to a file, where a folder goes was 'exists and is not a folder' (check_replaceable: the
    split, quantize, synthetic data and bench variant folders; train's --out, in test_train.py: this module is
    board_py, without torch), 'is not a folder' (an output's parent; bench's --data-root, of a missing one too) or
    'is a file, not a folder' (a data root, whatever was there), where hw build names what is there (what_is_at):
    each names it now, 'a FIFO', 'a link to X'."""
    import argparse

    from dpupose.commands.argtypes import output_dir, output_file
    from dpupose.data.mpii import load_split
    from dpupose.errors import DataError, UsageError
    from dpupose.eval.bench import BenchOptions, run_bench
    from dpupose.fsio import check_can_create, check_replaceable

    fifo, note = tmp_path / "fifo", tmp_path / "note.txt"
    os.mkfifo(fifo)
    note.write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(note.name)
    for path, what in ((fifo, "a FIFO"), (link, "a link to note.txt")):
        with pytest.raises(
            UsageError, match=rf"^{re.escape(str(path))} is {what}, not a folder; choose another --out$"
        ):
            check_replaceable(path, "mark.json", [], "an earlier result")
        with pytest.raises(NotADirectoryError) as raised:
            check_can_create(path / "out")
        assert (raised.value.strerror, raised.value.filename) == (f"{path} is {what}, not a folder", str(path / "out"))
        with pytest.raises(DataError, match=rf"^data root {re.escape(str(path))} is {what}, not a folder; give"):
            load_split(path, "valid")
        with pytest.raises(DataError, match=rf"^--data-root {re.escape(str(path))} is {what}, not a folder; give"):
            run_bench(BenchOptions(checkpoint=tmp_path / "x.pt", data="mpii", data_root=path))
        with pytest.raises(
            argparse.ArgumentTypeError, match=rf"^{re.escape(str(path))} is {what}, not a folder; give a folder$"
        ):
            output_dir(str(path))
        with pytest.raises(
            argparse.ArgumentTypeError, match=rf"^{re.escape(str(path))} is {what}, so .*y\.json cannot be made$"
        ):
            output_file(str(path / "x" / "y.json"))
    assert fifo.exists() and note.read_text() == "mine" and os.readlink(link) == "note.txt"


def test_a_data_root_that_is_a_link_leading_nowhere_is_named_not_said_missing(tmp_path):
    """A data root given as a symbolic link that leads nowhere was 'does not exist' (load_split's and bench's
    --data-root alike), though the user sees it there and every file input, and the data root of every other
    wrong kind (above), names what is there; a name with nothing at it still does not exist."""
    from dpupose.data.mpii import load_split
    from dpupose.errors import DataError
    from dpupose.eval.bench import BenchOptions, run_bench
    from dpupose.fsio import not_a_folder

    link, none = tmp_path / "data", tmp_path / "none"
    link.symlink_to("moved-away")
    nowhere = "is a symbolic link that leads nowhere (to moved-away), not a folder"
    assert not_a_folder(link) == nowhere
    assert not_a_folder(none) == "does not exist" and not_a_folder(none, "no such folder") == "no such folder"
    for path, what in ((link, nowhere), (none, "does not exist")):
        with pytest.raises(DataError) as raised:
            load_split(path, "valid")
        assert str(raised.value) == f"data root {path} {what}; give the folder holding images/ and annot/"
        with pytest.raises(DataError) as raised:
            run_bench(BenchOptions(checkpoint=tmp_path / "x.pt", data="mpii", data_root=path))
        assert str(raised.value) == f"--data-root {path} {what}; give the data set's root folder"
    assert os.readlink(link) == "moved-away" and os.listdir(tmp_path) == ["data"]


def test_the_current_folder_reached_through_a_link_above_it_is_not_replaced(tmp_path, monkeypatch):
    """The folder the shell stands in, given by a path through a link to a folder above it (`--out ../l/out`, l
    a link to the folder above), was compared by name alone and replaced: the shell was left in a removed folder
    (its cwd '(deleted)'), as given by its own name it is refused."""
    from dpupose.errors import UsageError

    (tmp_path / "a" / "out").mkdir(parents=True)
    (tmp_path / "l").symlink_to("a")
    (tmp_path / "t").symlink_to(".")
    monkeypatch.chdir(tmp_path / "a" / "out")
    for given in (tmp_path / "l" / "out", tmp_path / "t" / "a"):  # the folder itself; one that holds it
        with (
            pytest.raises(UsageError, match=r"is the current folder or holds it; replacing it would pull it"),
            atomic_dir(given) as tmp,
        ):
            (tmp / "new.txt").write_text("x")
        assert os.path.samefile(os.getcwd(), tmp_path / "a" / "out") and os.listdir(tmp_path / "a" / "out") == []
    with atomic_dir(tmp_path / "l" / "other") as tmp:  # beside it: written through the link as before
        (tmp / "new.txt").write_text("x")
    assert (tmp_path / "a" / "other" / "new.txt").read_text() == "x"


def test_a_file_that_cannot_be_written_is_named_not_its_temporary(tmp_path):
    # 250 characters is a legal name; the temporary sibling's longer name is not.
    path = tmp_path / ("x" * 250)
    with pytest.raises(OSError) as info, atomic_path(path):
        pass
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)


def test_check_can_create_probes_the_nearest_existing_folder_and_leaves_nothing(tmp_path):
    check_can_create(tmp_path / "new" / "deeper" / "out")  # parents still to be made: probed where they would go
    check_can_create(tmp_path / "out.json")
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        check_can_create(tmp_path / "file" / "out")
    assert info.value.filename == str(tmp_path / "file" / "out")  # the path the user gave
    with pytest.raises(OSError) as info:
        check_can_create("/proc/dpupose-probe")
    assert info.value.filename == "/proc/dpupose-probe"


def test_a_failed_sync_names_the_output_and_keeps_the_old_one(tmp_path, monkeypatch):
    """A full disk or quota shows at fsync on network file systems, and a failing card gives EIO there:
    os.fsync's error names no file, so the message must name the output, and nothing may be replaced."""
    import errno

    from dpupose.cli import os_error_line

    path, folder = tmp_path / "best.json", tmp_path / "plan"
    write_json(path, {"epoch": 1})
    with atomic_dir(folder) as tmp:
        (tmp / "a.onnx").write_text("first")

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as info:
        write_json(path, {"epoch": 2})
    assert os_error_line(info.value).startswith(f"No space left on device for {path} (")
    with pytest.raises(OSError) as info, atomic_dir(folder) as tmp:
        (tmp / "b.onnx").write_text("second")
    assert os_error_line(info.value).startswith(f"No space left on device for {folder} (")
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"epoch": 1} and os.listdir(folder) == ["a.onnx"]
    assert sorted(os.listdir(tmp_path)) == ["best.json", "plan"]


def test_a_write_error_names_the_output_not_the_temporary(tmp_path):
    """A write or close on a full disk raises an OSError that names no file; one about a file in the
    temporary folder names the file the user will look for."""
    path, folder = tmp_path / "model.pt", tmp_path / "plan"
    with pytest.raises(OSError) as info, atomic_path(path):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (info.value.errno, info.value.filename, info.value.filename2) == (errno.ENOSPC, str(path), None)
    with pytest.raises(OSError) as info, atomic_dir(folder) as tmp:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp / "sub" / "a.onnx"))
    assert (info.value.errno, info.value.filename) == (errno.EDQUOT, str(folder / "sub" / "a.onnx"))
    with pytest.raises(FileNotFoundError) as info, atomic_path(path) as tmp:  # a copy: source, then target
        shutil.copyfile(tmp_path / "missing", tmp)
    assert info.value.filename == str(tmp_path / "missing")  # about the source: kept as it is
    assert os.listdir(tmp_path) == []


def test_an_error_of_a_message_only_keeps_its_message(tmp_path):
    """An OSError with no errno (Pillow's 'cannot write mode RGBA as JPEG', gzip's BadGzipFile) was rebuilt
    with the output's name as OSError(None, None, PATH): '[Errno None] None: PATH', its message lost."""
    import gzip

    for context, path in ((atomic_path, tmp_path / "a.jpg"), (atomic_dir, tmp_path / "plan")):
        for exc in (OSError("cannot write mode RGBA as JPEG"), gzip.BadGzipFile("Not a gzipped file (b'PK')")):
            with pytest.raises(OSError) as info, context(path):
                raise exc
            assert str(info.value) == str(exc) and type(info.value) is type(exc)
    assert os.listdir(tmp_path) == []


def test_the_messages_of_a_full_disk_and_a_read_only_file_system(tmp_path, monkeypatch):
    from dpupose.cli import os_error_line

    class Usage:
        f_bavail, f_frsize = 300, 4096  # 1.2 MB

    monkeypatch.setattr(os, "statvfs", lambda path: Usage)
    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "new" / "a.pt")))
    assert line == (
        f"No space left on device for {tmp_path / 'new' / 'a.pt'} (1.2 MB free there): free some space on that "
        "file system, or write elsewhere"
    )
    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "src.bit", None, "out/dpu.bit"))
    assert line.startswith("No space left on device for out/dpu.bit (")  # a copy: its target filled the disk
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device")) == (
        "No space left on device: free some space, or write elsewhere"
    )
    assert os_error_line(OSError(errno.EROFS, "Read-only file system", "/mnt/card/run")) == (
        "/mnt/card/run is on a read-only file system: write elsewhere, or remount it read-write"
    )
    # A quota is the user's, not the file system's: its free space (1.2 MB here, often gigabytes) is beside the
    # point, and freeing "space on that file system" other users' files hold does not help.
    assert os_error_line(OSError(errno.EDQUOT, "Disk quota exceeded", "/home/u/run/last.pt")) == (
        "Disk quota exceeded for /home/u/run/last.pt: your quota on that file system is used up; remove some "
        "of your files there, or write elsewhere"
    )


def test_a_real_full_disk_keeps_the_old_output_and_leaves_no_temporary(small_fs):
    from conftest import fill

    fs = small_fs(256)
    write_json(fs / "best.json", {"epoch": 1})
    with atomic_dir(fs / "plan") as tmp:
        (tmp / "a.onnx").write_text("first")
    fill(fs)
    with pytest.raises(OSError) as info:
        write_text(fs / "best.json", "x" * 100_000)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(fs / "best.json"))
    with pytest.raises(OSError) as info, atomic_dir(fs / "plan") as tmp:
        (tmp / "b.onnx").write_bytes(bytes(100_000))
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(fs / "plan"))  # the write names no file
    assert json.loads((fs / "best.json").read_text()) == {"epoch": 1}
    assert os.listdir(fs / "plan") == ["a.onnx"] and (fs / "plan" / "a.onnx").read_text() == "first"
    assert sorted(os.listdir(fs)) == [".filler", "best.json", "plan"]


def test_read_own_json_reads_only_a_small_regular_file(tmp_path):
    """What bench --out and deploy-check --json read to tell an earlier result: a device that reads zeros for
    ever (/dev/zero, /dev/full), a FIFO (whose read would block) and a file over the limit are not read at all."""
    (tmp_path / "r.json").write_text('{"generated_by": "dpupose bench"}')
    assert read_own_json(tmp_path / "r.json") == {"generated_by": "dpupose bench"}
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    os.mkfifo(tmp_path / "fifo")
    big = tmp_path / "big.json"
    big.write_text("{}")
    os.truncate(big, OWN_JSON_LIMIT + 1)  # sparse: '{}' and then NULs
    for path in ("/dev/zero", "/dev/full", tmp_path / "fifo", big, tmp_path / "bad.json", tmp_path, tmp_path / "no"):
        assert read_own_json(path) is None, path


def test_a_cache_entry_on_a_read_only_file_system_is_used_unlocked(tmp_path, monkeypatch):
    from dpupose import fsio

    (tmp_path / "entry").mkdir()
    real_open = os.open

    def read_only(path, flags, *args):  # what a read-only mount answers to the lock file's creation
        if str(path).endswith(".lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(fsio.os, "open", read_only)
    with fsio.cache_lock(tmp_path / "entry"):  # made earlier: used as it is
        pass
    with pytest.raises(OSError, match=r"Read-only file system: .*missing"), fsio.cache_lock(tmp_path / "missing"):
        pass  # nothing there to use, and nowhere to make it: said, naming the entry


def test_a_cache_entry_made_while_another_process_waits_is_made_once(tmp_path):
    # The second process waits for the first's lock, then finds the entry made.
    script = (
        "import sys, time; from pathlib import Path; from dpupose.fsio import cache_lock\n"
        "entry = Path(sys.argv[1])\n"
        "with cache_lock(entry):\n"
        "    if not entry.is_dir():\n"
        "        time.sleep(0.5); entry.mkdir(); (entry / f'made-by-{sys.argv[2]}').touch()\n"
    )
    entry = tmp_path / "entry"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(entry), str(i)]) for i in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert len(list(entry.iterdir())) == 1


def test_a_run_refused_in_an_output_folder_it_made_leaves_no_trace(tmp_path):
    """bench and demo make and lock their folder before any work; one refused later (or interrupted) before it
    wrote anything left that new, empty folder with its .dpupose.lock (and the parents it had made)."""
    from dpupose.errors import UsageError
    from dpupose.fsio import lock_folder, lock_output_folder

    new = tmp_path / "a" / "b" / "work"
    for exc in (UsageError("refused"), KeyboardInterrupt()):
        with pytest.raises(type(exc)) as raised, lock_output_folder(new, "dpupose bench", "--work"):
            assert sorted(os.listdir(new)) == [".dpupose.lock"]  # held before the work
            raise exc
        assert raised.value is exc  # the block's own, not a refusal of the lock
        assert os.listdir(tmp_path) == []  # a/ and a/b/ were made by it too
    # A folder that was there stays (without the lock file the run made), and so does one the run wrote into.
    (tmp_path / "old").mkdir()
    with pytest.raises(UsageError, match="^refused$"), lock_output_folder(tmp_path / "old", "dpupose bench", "--work"):
        raise UsageError("refused")
    assert os.listdir(tmp_path / "old") == []
    (tmp_path / "old" / ".dpupose.lock").write_bytes(b"")  # an earlier command's lock file: not this run's to remove
    with pytest.raises(UsageError, match="^refused$"), lock_output_folder(tmp_path / "old", "dpupose bench", "--work"):
        raise UsageError("refused")
    assert os.listdir(tmp_path / "old") == [".dpupose.lock"]
    (tmp_path / "old" / ".dpupose.lock").unlink()
    with pytest.raises(UsageError, match="^refused after writing$"), lock_output_folder(new, "dpupose bench", "--work"):
        (new / "plan.json").write_text("{}")
        raise UsageError("refused after writing")
    assert sorted(os.listdir(new)) == ["plan.json"]
    # A run refused by another's lock takes nothing of the other's away.
    shutil.rmtree(tmp_path / "a")
    with lock_output_folder(new, "python -m dpupose.demo"):
        with pytest.raises(UsageError, match="in use by another"), lock_folder(new, "python -m dpupose.demo"):
            pass
        with pytest.raises(UsageError, match="in use by another"), lock_output_folder(new, "python -m dpupose.demo"):
            pass
        assert os.listdir(new) == [".dpupose.lock"]
    assert os.listdir(new) == [".dpupose.lock"]  # a run that ended well keeps its folder


def test_a_run_refused_in_an_output_folder_it_made_through_a_dangling_link_leaves_no_trace(tmp_path):
    """--out a symbolic link that leads nowhere yet is written through (architecture.md): the folder is made
    where the link leads. A run refused after that (or interrupted) left that folder, and the folders above it
    that it made, at the link's target, where one refused with --out a plain new name leaves nothing; the link
    stays as it was."""
    from dpupose.errors import UsageError
    from dpupose.fsio import lock_output_folder

    (tmp_path / "run").symlink_to(os.path.join("runs", "day1", "r1"))
    (tmp_path / "to").symlink_to("nowhere")  # a dangling link above the output folder
    for out in (tmp_path / "run", tmp_path / "to" / "sub" / "work"):
        for exc in (UsageError("refused"), KeyboardInterrupt()):
            with pytest.raises(type(exc)), lock_output_folder(out, "dpupose run"):
                assert sorted(os.listdir(out)) == [".dpupose.lock"]  # made through the link, and held
                raise exc
            assert sorted(os.listdir(tmp_path)) == ["run", "to"]
    assert [os.readlink(tmp_path / name) for name in ("run", "to")] == [os.path.join("runs", "day1", "r1"), "nowhere"]
    # What was there before the run stays: a folder on the way, and the output folder once written into.
    (tmp_path / "runs").mkdir()
    with pytest.raises(UsageError), lock_output_folder(tmp_path / "run", "dpupose run"):
        raise UsageError("refused")
    assert sorted(os.listdir(tmp_path)) == ["run", "runs", "to"] and os.listdir(tmp_path / "runs") == []
    with pytest.raises(UsageError), lock_output_folder(tmp_path / "run", "dpupose run"):
        (tmp_path / "run" / "keypoints.jsonl").write_text("")
        raise UsageError("refused after writing")
    assert os.listdir(tmp_path / "runs" / "day1" / "r1") == ["keypoints.jsonl"]


def test_folders_made_again_after_another_run_s_clean_up_are_removed_innermost_first(tmp_path, monkeypatch):
    """lock_folder makes the folder again when another run's clean-up removed it after `make` found it (the lock
    file's open: ENOENT). The first make here made only out/ (a/b/ were there); the clean-up then removed
    out/, b/ and a/, and the second made all three. lock_output_folder put the second make's new folders
    (b/, a/) before out/, so a refused run's rmdir began at b/, which holds out/, and left a/b/out/."""
    from dpupose import fsio
    from dpupose.errors import UsageError

    (tmp_path / "a" / "b").mkdir(parents=True)
    out = tmp_path / "a" / "b" / "out"
    real_make_dirs = fsio.make_dirs
    calls = []

    def make_dirs_then_cleaned_up(path):
        made = real_make_dirs(path)
        calls.append([p.relative_to(tmp_path).as_posix() for p in made])
        if len(calls) == 1:  # another run's clean-up, as the lock file is opened
            for p in (out, out.parent, out.parent.parent):
                p.rmdir()
        return made

    monkeypatch.setattr(fsio, "make_dirs", make_dirs_then_cleaned_up)
    with pytest.raises(UsageError, match="^refused$"), fsio.lock_output_folder(out, "dpupose run"):
        assert os.listdir(out) == [".dpupose.lock"]
        raise UsageError("refused")
    assert calls == [["a/b/out"], ["a/b/out", "a/b", "a"]]  # made again, whole
    assert os.listdir(tmp_path) == []  # each folder this run made is removed


def test_make_dirs_returns_the_folders_it_made_though_a_parent_went_after_it_looked(tmp_path, monkeypatch):
    """make_dirs looked for the missing folders first and then ran mkdir -p: a parent that another run's
    clean-up removed in between was made again but not returned, so a refused run that made out/ under it
    left it behind. Each mkdir is its own now, and what it made is returned; a folder another process made
    first is not. The stand-in for the clean-up removes a/ (there when make_dirs began) at the first mkdir."""
    from dpupose import fsio
    from dpupose.errors import UsageError

    real_mkdir, calls = os.mkdir, []

    def mkdir_after_a_clean_up(path, *args, **kwargs):
        calls.append(Path(path).relative_to(tmp_path).as_posix())
        if len(calls) == 1:
            (tmp_path / "a").rmdir()
        return real_mkdir(path, *args, **kwargs)

    (tmp_path / "a").mkdir()
    monkeypatch.setattr(os, "mkdir", mkdir_after_a_clean_up)
    made = fsio.make_dirs(tmp_path / "a" / "b" / "c")
    assert made == [tmp_path / "a" / "b" / "c", tmp_path / "a" / "b", tmp_path / "a"]  # each, innermost first
    # A run refused in that folder removes all it made: a/ too, which was there when it began.
    for p in made:
        p.rmdir()
    (tmp_path / "a").mkdir()
    calls.clear()
    with pytest.raises(UsageError, match="^refused$"), fsio.lock_output_folder(tmp_path / "a" / "out", "dpupose run"):
        raise UsageError("refused")
    assert calls[0] == "a/out" and os.listdir(tmp_path) == []  # a/ was left (made again, and not in the list)

    def made_by_another(path, *args, **kwargs):  # another process makes the folder just before this one does
        real_mkdir(path, *args, **kwargs)
        raise FileExistsError(17, "File exists", str(path))

    monkeypatch.setattr(os, "mkdir", made_by_another)
    assert fsio.make_dirs(tmp_path / "x" / "y") == []  # neither is this run's to remove
    assert (tmp_path / "x" / "y").is_dir()


def test_make_dirs_returns_the_folders_it_made_where_they_are_on_disk(tmp_path, monkeypatch):
    """Through a link to a folder the folders are made at its target, and returned there, absolute: a refused run
    removes them by those paths, so a link changed meanwhile (or a relative path read from another folder) does
    not lead its clean-up to folders of the same names elsewhere."""
    from dpupose import fsio

    (tmp_path / "store").mkdir()
    (tmp_path / "link").symlink_to("store")
    made = fsio.make_dirs(tmp_path / "link" / "a" / "b")
    assert made == [tmp_path / "store" / "a" / "b", tmp_path / "store" / "a"]
    monkeypatch.chdir(tmp_path)
    assert fsio.make_dirs(Path("rel") / "x") == [tmp_path / "rel" / "x", tmp_path / "rel"]
    assert fsio.make_dirs(Path("link") / "c") == [tmp_path / "store" / "c"]
    assert sorted(os.listdir(tmp_path / "store")) == ["a", "c"] and (tmp_path / "rel" / "x").is_dir()


def test_a_command_refused_in_a_folder_of_the_users_leaves_it_as_it_found_it(tmp_path):
    """run, train and hw build lock a folder that is there (a user's) before their checks: one refused by them
    left its empty .dpupose.lock there for good. The lock file it made goes when the block fails, while still
    held; one that was there stays, as does the lock file of a block that ended well, and a second command is
    refused as before."""
    from dpupose.errors import UsageError
    from dpupose.fsio import lock_folder

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"a photo")
    for exc in (UsageError("refused"), KeyboardInterrupt(), OSError(28, "No space left on device")):
        with pytest.raises(type(exc)) as raised, lock_folder(folder, "dpupose run"):
            assert sorted(os.listdir(folder)) == [".dpupose.lock", "a.jpg"]  # held during the block
            with pytest.raises(UsageError, match="in use by another `dpupose run`"), lock_folder(folder, "dpupose run"):
                pass  # a second one is refused, and takes the first one's lock file nowhere
            assert sorted(os.listdir(folder)) == [".dpupose.lock", "a.jpg"]
            raise exc
        assert raised.value is exc  # the block's own, not a refusal of the lock
        assert os.listdir(folder) == ["a.jpg"]
    with lock_folder(folder, "dpupose run"):  # one that ends well keeps it, as a lock file that was there stays
        pass
    assert sorted(os.listdir(folder)) == [".dpupose.lock", "a.jpg"]
    (folder / ".dpupose.lock").write_bytes(b"12\n")
    with pytest.raises(UsageError, match="^refused$"), lock_folder(folder, "dpupose run"):
        raise UsageError("refused")
    assert sorted(os.listdir(folder)) == [".dpupose.lock", "a.jpg"]


def test_a_refused_commands_lock_file_removal_takes_no_other_lock_away(tmp_path, monkeypatch):
    """A refused command removes the lock file it made while holding it. A second command that opened that file
    just before locks it just after, finds it gone (_still_at) and locks the file there now; a third is refused
    by it. A lock file made at that name by another command after the removal is not removed."""
    from dpupose import fsio
    from dpupose.errors import UsageError

    folder = tmp_path / "out"
    folder.mkdir()
    lock = folder / ".dpupose.lock"
    first = fsio.lock_folder(folder, "dpupose run")
    first.__enter__()
    real_open = os.open
    hooked = []

    def first_refused_after_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if str(path) == str(lock) and not hooked:  # the second's open, before its flock
            hooked.append(path)
            assert first.__exit__(UsageError, UsageError("refused"), None) is False
            assert os.listdir(folder) == []  # the first removed the lock file it made
        return fd

    monkeypatch.setattr(fsio.os, "open", first_refused_after_open)
    with fsio.lock_folder(folder, "dpupose run"):
        monkeypatch.undo()
        assert hooked and os.listdir(folder) == [".dpupose.lock"]
        held = f"in use by another `dpupose run` \\(process {os.getpid()}\\)"
        with pytest.raises(UsageError, match=held), fsio.lock_folder(folder, "dpupose run"):
            pass
    # The lock file removed and another made at its name while a failing block still holds the old one open.
    held = fsio.lock_folder(folder, "dpupose run")
    lock.unlink()
    with pytest.raises(UsageError, match="refused"), held:
        lock.unlink()
        lock.write_bytes(b"")  # as another command's, made after the removal
        other = os.stat(lock).st_ino
        raise UsageError("refused")
    assert os.stat(lock).st_ino == other


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_atomic_write_never_takes_the_place_of_a_fifo_or_a_folder(tmp_path, kind):
    from dpupose.errors import UsageError
    from dpupose.fsio import atomic_path

    target = tmp_path / "out.json"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
        (target / "keep").write_text("mine")
    what = "a FIFO" if kind == "fifo" else "a folder"
    said = f"out.json is {what}, not a file, and the output would take its place"
    with pytest.raises(UsageError, match=said), atomic_path(target) as tmp:
        tmp.write_text("{}")  # not reached: refused before the work
    assert stat.S_ISFIFO(os.lstat(target).st_mode) if kind == "fifo" else (target / "keep").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left


def test_signals_held_back_over_a_set_are_delivered_after_it():
    import signal as sig

    from dpupose.fsio import signals_deferred

    done = []
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        os.kill(os.getpid(), sig.SIGINT)  # Ctrl-C between two writes of the set
        done.append("second write")
    assert done == ["second write"]
    assert sig.getsignal(sig.SIGINT) is sig.default_int_handler
    # SIGTERM too: held back, then delivered to the handler there was, which is put back.
    seen: list[int] = []
    before = sig.signal(sig.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with signals_deferred():
            os.kill(os.getpid(), sig.SIGTERM)
            assert seen == []  # not yet: the set is still being written
            done.append("third write")
        assert seen == [sig.SIGTERM] and done[-1] == "third write"
    finally:
        sig.signal(sig.SIGTERM, before)


def test_a_lock_file_removed_between_its_open_and_its_lock_is_locked_again(tmp_path, monkeypatch):
    """A bench refused in the --work it made removes its lock file and folder, while holding the lock. A second
    bench that had opened that lock file just before locked it just after: a lock on a file no one else opens,
    and a third one made the folder again and locked a new lock file, so two ran in one folder. The second
    locks the file there now (making the folder again); the third is refused."""
    import fcntl

    from dpupose import fsio
    from dpupose.errors import UsageError

    new = tmp_path / "a" / "work"
    lock = new / ".dpupose.lock"
    first = fsio.lock_output_folder(new, "dpupose bench", "--work")
    first.__enter__()
    real_open = os.open
    hooked = []

    def first_refused_after_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if str(path) == str(lock) and not hooked:  # the second's open, before its flock
            hooked.append(path)
            assert first.__exit__(UsageError, UsageError("refused"), None) is False
            assert os.listdir(tmp_path) == []  # the first removed its lock file and the folders it made
        return fd

    monkeypatch.setattr(fsio.os, "open", first_refused_after_open)
    with pytest.raises(UsageError, match="refused later"), fsio.lock_output_folder(new, "dpupose bench", "--work"):
        monkeypatch.undo()
        assert hooked
        held = f"in use by another `dpupose bench` \\(process {os.getpid()}\\)"
        with pytest.raises(UsageError, match=held), fsio.lock_output_folder(new, "dpupose bench", "--work"):
            pass
        assert os.listdir(new) == [".dpupose.lock"]
        raise UsageError("refused later")
    assert os.listdir(tmp_path) == []  # the folders it made again are its own: removed when it is refused

    # cache_lock never removes its file, but make clean may while a process waits for it.
    entry = tmp_path / "build" / "entry"
    cache_file = entry.with_name(".entry.lock")
    hooked.clear()

    def cleaned_after_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if str(path) == str(cache_file) and not hooked:
            hooked.append(path)
            shutil.rmtree(tmp_path / "build")
        return fd

    monkeypatch.setattr(fsio.os, "open", cleaned_after_open)
    with fsio.cache_lock(entry):
        monkeypatch.undo()
        assert hooked
        fd = os.open(cache_file, os.O_RDWR)  # the lock file there now is the one held
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_folder_a_refused_commands_clean_up_removed_before_the_lock_files_open_is_made_again(tmp_path, monkeypatch):
    """A run refused in the --out it made removes its lock file and the folder, while holding the lock. A second
    run that found the folder there (so made none) and opened its lock file just after that removal failed
    with 'No such file or directory' naming --out, which it was to make: it makes the folder again and runs."""
    from dpupose import fsio
    from dpupose.errors import UsageError

    new = tmp_path / "a" / "out"
    lock = new / ".dpupose.lock"
    first = fsio.lock_output_folder(new, "dpupose run")
    first.__enter__()
    real_open = os.open
    hooked = []

    def first_refused_before_open(path, flags, *args, **kwargs):
        if str(path) == str(lock) and not hooked:  # the second's open, after its make() found the folder there
            hooked.append(path)
            assert first.__exit__(UsageError, UsageError("refused"), None) is False
            assert os.listdir(tmp_path) == []  # the first removed its lock file and the folders it made
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(fsio.os, "open", first_refused_before_open)
    with pytest.raises(UsageError, match="refused later"), fsio.lock_output_folder(new, "dpupose run"):
        monkeypatch.undo()
        assert hooked and os.listdir(new) == [".dpupose.lock"]
        held = f"in use by another `dpupose run` \\(process {os.getpid()}\\)"
        with pytest.raises(UsageError, match=held), fsio.lock_output_folder(new, "dpupose run"):
            pass
        raise UsageError("refused later")
    assert os.listdir(tmp_path) == []  # the folders it made again are its own: removed when it is refused


@pytest.mark.parametrize("which", ["lock_folder", "cache_lock"])
def test_a_lock_file_replaced_between_its_open_and_its_lock_is_locked_again(tmp_path, monkeypatch, which):
    """The lock file this process opened is removed and a new one made at its name (another process's
    clean-up, then a third process) before it locks: the file there now is a different inode, and the lock
    taken on the old one would guard nothing. The new one is the one held (a fourth open of the name finds it
    locked, and this process's PID in it)."""
    import fcntl

    from dpupose import fsio

    folder = tmp_path / "work"
    folder.mkdir()
    if which == "lock_folder":
        path, held = folder / ".dpupose.lock", fsio.lock_folder(folder, "dpupose bench", "--work")
    else:
        path, held = tmp_path / ".work.lock", fsio.cache_lock(folder)
    real_open = os.open
    replaced = []

    def replaced_after_open(name, flags, *args, **kwargs):
        fd = real_open(name, flags, *args, **kwargs)
        if str(name) == str(path) and not replaced:  # the old inode stays alive while fd is open
            os.unlink(path)
            path.write_text("")
            replaced.append(os.stat(path).st_ino)
        return fd

    monkeypatch.setattr(fsio.os, "open", replaced_after_open)
    with held:
        monkeypatch.undo()
        assert replaced == [os.stat(path).st_ino]
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        held_by = [line.strip() for line in path.read_text().splitlines()]
        assert held_by == [str(os.getpid())] + (["dpupose bench"] if which == "lock_folder" else [])


def test_ctrl_c_anywhere_in_a_folder_write_leaves_the_earlier_or_the_new_and_nothing_else(tmp_path):
    """A sweep (signal_sweep): Ctrl-C at each point of the write in turn. The folder is the earlier one or the
    new one, whole, and nothing is left beside it: a signal just after mkdtemp made the temporary left it, and
    one as the lock on the parent was let go left the earlier folder as .plan.old-PID-XXXXXXXX. The umask stays."""
    from signal_sweep import signal_sweep

    out = tmp_path / "plan"
    umask = os.umask(0o022)  # reading it sets it; 0o022 has the new folder's files differ from one left at 0
    seen = set()
    for point in signal_sweep(signal.SIGINT):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        (out / "a.onnx").write_text("earlier")
        interrupted = False
        try:
            with point.armed(), atomic_dir(out) as tmp:
                (tmp / "b.onnx").write_text("new")
        except KeyboardInterrupt:
            interrupted = True
        assert interrupted == point.sent, point  # a signal sent is not lost
        state = {p.name: p.read_text() for p in out.iterdir()}
        assert state in ({"a.onnx": "earlier"}, {"b.onnx": "new"}), point
        assert os.listdir(tmp_path) == ["plan"], point
        # A signal as atomic_dir read the umask (set to 0 and back) left it 0: later files writable by all.
        assert os.umask(0o022) == 0o022, point
        seen.add(next(iter(state)))
    os.umask(umask)
    assert seen == {"a.onnx", "b.onnx"} and point.n > 20  # signalled before and after the new one was in place


def test_ctrl_c_anywhere_in_the_creatable_check_leaves_no_probe(tmp_path):
    """check_can_create makes and removes a probe folder: a signal just after mkdtemp made it (before the
    rmdir) left a hidden .NAME.XXXX.probe folder beside the output for good."""
    from signal_sweep import signal_sweep

    from dpupose.fsio import check_can_create

    out = tmp_path / "out"
    for point in signal_sweep(signal.SIGINT):
        interrupted = False
        try:
            with point.armed():
                check_can_create(out)
        except KeyboardInterrupt:
            interrupted = True
        assert interrupted == point.sent, point  # a signal sent is not lost
        assert os.listdir(tmp_path) == [], point
    assert point.n > 3


@pytest.mark.parametrize(
    ("lock", "opener"),
    [
        ("lock_folder", "lock_folder"),
        ("cache_lock", "cache_lock"),
        ("atomic_dir", "_parent_locked"),
        ("atomic_path", "_fsync"),
    ],
)
def test_ctrl_c_anywhere_in_taking_a_lock_leaves_no_file_descriptor_open(tmp_path, lock, opener):
    """A sweep (signal_sweep): Ctrl-C at each point of taking and letting go of a lock (or of an atomic write,
    which locks the parent folder and flushes the file through a descriptor of its own) in turn. One just as
    os.open returned a descriptor, before the try that closes it, left it open for the life of the process (a
    notebook's): one more entry in /proc/self/fd at each such Ctrl-C."""
    from contextlib import contextmanager

    from signal_sweep import signal_sweep

    from dpupose import fsio

    @contextmanager
    def written(atomic, name):
        with atomic(tmp_path / name) as tmp:
            (tmp / "a" if atomic is fsio.atomic_dir else tmp).write_text("new")
            yield

    def taken():
        if lock == "lock_folder":
            (tmp_path / "out").mkdir(exist_ok=True)
            return fsio.lock_folder(tmp_path / "out", "dpupose bench")
        if lock == "atomic_dir":
            return written(fsio.atomic_dir, "plan")
        if lock == "atomic_path":
            return written(fsio.atomic_path, "x.json")
        return fsio.cache_lock(tmp_path / "build" / "entry")

    before = len(os.listdir("/proc/self/fd"))
    signalled = []
    for point in signal_sweep(signal.SIGINT):
        interrupted = False
        try:
            with point.armed(), taken():
                pass
        except KeyboardInterrupt:
            interrupted = True
            signalled.append(point.where)
        assert interrupted == point.sent, point  # a signal sent is not lost
        assert len(os.listdir("/proc/self/fd")) == before, point
    assert any(where.startswith(f"{opener}:") for where in signalled)  # the sweep went through the open's lines
    with taken():  # and the lock is free
        pass


def test_write_json_writes_null_for_what_is_not_a_finite_number(tmp_path):
    """json.dumps writes NaN and Infinity by default, which JSON parsers other than Python's refuse."""
    data = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": {"d": float("-nan")}, "e": 3}
    write_json(tmp_path / "x.json", data)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    got = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert got == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None}, "e": 3}
    assert json_text({"x": [float("nan")]}) == '{"x": [null]}'
    # numpy's float64 is a float: its NaN and infinities are null too, its finite values numbers
    nan, inf, half = np.float64("nan"), np.float64("inf"), np.float64(1.5)
    assert json_text({"a": nan, "b": [-inf, half]}) == '{"a": null, "b": [null, 1.5]}'


def test_atomic_dir_leaves_the_mode_of_what_a_link_in_it_leads_to_alone(tmp_path):
    # the entries atomic_dir makes get the umask's modes; a link put in the folder is not one of them: its target
    # (the user's file elsewhere, or nothing: a dangling link) keeps its own mode and does not stop the swap
    target = tmp_path / "theirs.txt"
    target.write_text("x")
    target.chmod(0o600)
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
        os.symlink(target, tmp / "link")
        os.symlink(tmp_path / "missing", tmp / "dangling")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert (out / "link").read_text() == "x" and (out / "dangling").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "dangling", "link"]


def test_a_full_disk_at_the_lock_files_pid_keeps_the_lock_and_names_the_output(tmp_path, monkeypatch):
    """A new --out on a full disk: the holder's PID written into the lock file just made failed, and its error
    (a write's: no file named) stopped bench, run and train with 'No space left on device: free some space, or
    write elsewhere', leaving the folder bench had made with its empty lock file. The PID only names the holder:
    the lock is held without it, and the command's first output fails, naming that output, and leaves nothing."""
    from dpupose import fsio
    from dpupose.errors import UsageError

    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio.os, "pwrite", pwrite)
    work = tmp_path / "new" / "work"
    plan = work / "split-int8-cpu" / "plan.json"
    with pytest.raises(OSError) as info, fsio.lock_output_folder(work, "dpupose bench", "--work"):
        held = r"--work .* is in use by another `dpupose bench` \(another process\)"  # no PID written
        with pytest.raises(UsageError, match=held), fsio.lock_folder(work, "dpupose bench", "--work"):
            pass
        raise OSError(errno.ENOSPC, "No space left on device", str(plan))
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(plan))
    assert os.listdir(tmp_path) == []
    entry = tmp_path / "cache" / "entry"
    with fsio.cache_lock(entry):
        assert entry.with_name(".entry.lock").read_bytes() == b""


def test_a_full_temporary_folder_is_named_with_tmpdir_to_set(tmp_path, monkeypatch):
    """deploy lays the files out, sdcard stage copies them out to check them, and bench converts a model, in
    folders dpupose makes in the temporary folder: a full one was 'No space left on device for
    /tmp/dpupose-deploy-1a2b3c4d/dpupose/overlay/dpu.bit (...): free some space on that file system, or write
    elsewhere', a path gone by then that no option chooses. The temporary folder is named, and TMPDIR to set."""
    import tempfile

    from dpupose.cli import os_error_line

    class Usage:
        f_bavail, f_frsize = 25, 4096  # 0.1 MB

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(os, "statvfs", lambda path: Usage)
    copy = OSError(
        errno.ENOSPC, "No space left on device", "dpu.bit", None, str(tmp_path / "dpupose-deploy-1a2b3c4d" / "x")
    )
    assert os_error_line(copy) == (
        f"No space left on device in the temporary folder {tmp_path} (0.1 MB free there), where this command makes "
        "its working copies: free some space there, or set TMPDIR to a folder on a disk with room"
    )
    quota = OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "dpupose-ls-9z8y_7x6" / "root"))
    assert os_error_line(quota).startswith(f"Disk quota exceeded in the temporary folder {tmp_path} (your quota there")
    made = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "dpupose-stage-7c6b5a4z"))  # mkdtemp's
    assert os_error_line(made).startswith(f"No space left on device in the temporary folder {tmp_path} (0.1 MB")
    own = tmp_path / "run" / "dpupose-x.json"  # an output the user chose there: named as any other
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", str(own))).startswith(
        f"No space left on device for {own} (0.1 MB free there): free some space on that file system"
    )


def test_a_users_output_named_dpupose_in_the_temporary_folder_is_named_as_itself(tmp_path, monkeypatch):
    """Any path under the temporary folder whose first name starts dpupose- was taken for a working copy of
    dpupose's: a user's `--out /tmp/dpupose-run` (or `bench --out /tmp/dpupose-bench.json`) on a full disk
    said 'in the temporary folder /tmp, where this command makes its working copies: ... set TMPDIR', which
    moves nothing the user chose. Only tempfile's names (a dpupose-KIND- prefix and 8 random characters) are."""
    import tempfile

    from dpupose.cli import os_error_line

    class Usage:
        f_bavail, f_frsize = 25, 4096  # 0.1 MB

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(os, "statvfs", lambda path: Usage)
    users = ["dpupose-run/keypoints.jsonl", "dpupose-bench.json", "dpupose-x/dpupose-stage-1/a"]
    users.append("dpupose-run-20261201/keypoints.jsonl")  # a date: 8 characters as tempfile's, no kind of ours
    for mine in users:
        line = os_error_line(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / mine)))
        assert line == (
            f"No space left on device for {tmp_path / mine} (0.1 MB free there): free some space on that file "
            "system, or write elsewhere"
        )
    for ours in ("dpupose-debugfs-k2_9ab0x.cmd", "dpupose-ort-int8-abcdefgh/model.onnx"):
        line = os_error_line(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ours)))
        assert line.startswith(f"No space left on device in the temporary folder {tmp_path} (0.1 MB free there)")


def test_every_temporary_folder_prefix_of_dpupose_s_is_a_kind_the_cli_knows():
    """The full-disk line for dpupose's working copies knows them by their prefixes (cli.TEMPORARY_KINDS): each
    prefix="dpupose-KIND-" in the package is one, and each one is in use."""
    import re
    from pathlib import Path

    from dpupose import cli

    sw = Path(__file__).resolve().parents[1] / "sw" / "dpupose"
    used = {m for p in sw.rglob("*.py") for m in re.findall(r'prefix="dpupose-([a-z0-9-]+)-"', p.read_text())}
    assert used == set(cli.TEMPORARY_KINDS)


def test_the_ctrl_c_tests_pass_when_started_with_sigint_ignored(tmp_path):
    """A `make test &` from a shell script starts pytest with SIGINT ignored (no job control: the shell ignores
    it in background commands), and Python then raises no KeyboardInterrupt: the tests of what Ctrl-C leaves
    behind failed there. conftest.py gives the tests Python's handler back."""
    here = os.path.abspath(__file__)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
            "test_signals_held_back_over_a_set_are_delivered_after_it", here]  # fmt: skip
    proc = subprocess.run(
        argv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as the shell does for `make test &`
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_the_tests_on_a_small_file_system_say_they_need_root(small_fs, monkeypatch):
    """As an ordinary user (make test needs no root) they were skipped as 'mounting a tmpfs is not permitted
    here', which said neither why nor what would run them."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match=r"^needs root: it mounts a small tmpfs \(a real full or read-only"):
        small_fs(64)


def test_open_new_writes_a_new_file_and_leaves_one_made_read_only(tmp_path, monkeypatch):
    """open_new (a run's keypoints.jsonl, a tool's log, write_jpeg's images): a new file in place of the one at
    the name, whose other names (a hard link kept elsewhere) keep what it held; a link keeps it and its file is
    replaced. A file made read-only to keep it was refused by open() before, and is refused still, not removed
    (the directory's write permission alone would let the removal through)."""
    import errno

    from dpupose.fsio import open_new

    out, kept = tmp_path / "keypoints.jsonl", tmp_path / "kept.jsonl"
    out.write_bytes(b"earlier\n")
    os.link(out, kept)
    with open_new(out) as f:
        f.write(b"new\n")
    assert (out.read_bytes(), kept.read_bytes()) == (b"new\n", b"earlier\n")
    link, target = tmp_path / "link.log", tmp_path / "target.log"
    target.write_bytes(b"earlier")
    os.link(target, tmp_path / "target-kept.log")
    link.symlink_to(target)
    with open_new(link, buffered=True) as f:
        f.write(b"log")
    assert link.is_symlink() and target.read_bytes() == b"log"
    assert (tmp_path / "target-kept.log").read_bytes() == b"earlier"
    out.chmod(0o444)
    if os.geteuid() == 0:  # root may write any file: answer as for another user, by the file's bits for others
        real = os.access
        as_others = lambda p, mode: mode & ~os.stat(p).st_mode & 0o7 == 0  # r--: R_OK only
        monkeypatch.setattr(os, "access", lambda p, mode: as_others(p, mode) if Path(p) == out else real(p, mode))
    with pytest.raises(PermissionError) as info:
        open_new(out)
    assert (info.value.errno, info.value.filename) == (errno.EACCES, str(out))
    assert out.read_bytes() == b"new\n"


def test_a_folder_another_command_holds_is_said_to_be_that_commands(tmp_path):
    """Two commands of different kinds into one folder (`dpupose run --out build/demo` while the demo writes
    there): the second was told the folder 'is in use by another `dpupose run`', the holder named as a command
    of its own kind, which no process was. The holder's command is written beside its PID; a lock file of an
    earlier version (its PID only) still names the process, as a command of the refused one's kind."""
    from dpupose.errors import UsageError
    from dpupose.fsio import lock_folder, lock_output_folder

    folder = tmp_path / "demo"
    pid = os.getpid()
    with lock_output_folder(folder, "python -m dpupose.demo"):
        with pytest.raises(UsageError) as refused, lock_folder(folder, "dpupose run"):
            pass
        assert str(refused.value) == (
            f"--out {folder} is in use by `python -m dpupose.demo` (process {pid}): wait for it to end, or choose "
            "another --out"
        )
        same = rf"in use by another `python -m dpupose.demo` \(process {pid}\)"
        with pytest.raises(UsageError, match=same), lock_folder(folder, "python -m dpupose.demo"):
            pass
        (folder / ".dpupose.lock").write_bytes(f"{pid}\n".encode())  # as an earlier version wrote it
        older = rf"in use by another `dpupose run` \(process {pid}\)"
        with pytest.raises(UsageError, match=older), lock_folder(folder, "dpupose run"):
            pass


def test_open_new_opens_a_fifo_as_it_is(tmp_path):
    """Only a regular file is removed first: a FIFO at the name (a reader waiting on it) is written into, and
    stays a FIFO."""
    import stat

    from dpupose.fsio import open_new

    fifo = tmp_path / "keypoints.jsonl"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with open_new(fifo) as f:
            f.write(b"line\n")
        assert os.read(reader, 100) == b"line\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_json_nested_deeper_than_python_reads_is_invalid_json_not_a_recursion_error(tmp_path):
    """json.loads raises RecursionError for nesting past the interpreter's recursion limit (a few kB of '['),
    which no reader's `except ValueError` took: every command stopped there with a traceback."""
    deep = "[" * 100_000 + "]" * 100_000
    for text in (deep, deep.encode(), '{"a": ' * 100_000 + "1" + "}" * 100_000):
        with pytest.raises(json.JSONDecodeError, match="nested deeper than can be read"):
            loads_json(text)
    assert loads_json('{"a": [1, [2.5, null]]}') == {"a": [1, [2.5, None]]}
    assert loads_json(b"[" * 50 + b"]" * 50) == json.loads("[" * 50 + "]" * 50)
    path = tmp_path / "deep.json"
    path.write_text(deep)
    assert read_own_json(path) is None


def test_a_folder_at_the_lock_file_s_name_is_named_as_such(tmp_path):
    """A folder at .dpupose.lock was 'cannot use FOLDER: Is a directory', of the output folder itself."""
    from dpupose.errors import UsageError
    from dpupose.fsio import lock_folder

    (tmp_path / ".dpupose.lock").mkdir()
    (tmp_path / ".dpupose.lock" / "inside").write_text("keep")
    with pytest.raises(UsageError) as info, lock_folder(tmp_path, "dpupose run"):
        pass
    assert str(info.value) == (
        f"--out {tmp_path} holds a folder named .dpupose.lock, the name of the lock file dpupose keeps there: move "
        "that folder elsewhere, or choose another --out"
    )
    assert (tmp_path / ".dpupose.lock" / "inside").read_text() == "keep"


def test_open_new_writes_through_a_link_to_a_pipe_as_open_did(tmp_path):
    """A link at the name to /dev/stdout (a tool's log watched as it runs: `ln -s /dev/stdout logs/link.log`),
    with stdout a pipe: realpath reads /proc's /proc/self/fd/1 as text, 'pipe:[N]', and open_new created a file
    of that name under /proc/PID/fd/ (FileNotFoundError), where open() had written into the pipe. Only a regular
    file found at the link's end is replaced; anything else is opened through the link, as open() opens it."""
    from dpupose.fsio import open_new

    reader, writer = os.pipe()
    try:
        link = tmp_path / "link.log"
        link.symlink_to(f"/proc/self/fd/{writer}")
        with open_new(link) as f:
            f.write(b"log\n")
        assert os.read(reader, 100) == b"log\n"
        assert link.is_symlink()
    finally:
        os.close(reader)
        os.close(writer)


@pytest.mark.parametrize("via", ["/proc/self/fd/{fd}", "/dev/fd/{fd}", "/proc/{pid}/fd/{fd}", "chain"])
def test_open_new_writes_into_its_own_descriptor_a_file_through_a_link(tmp_path, via):
    """A link to /dev/stdout (a tool's log watched as it runs) with stdout a file (`make hw > build.txt`, nohup's
    nohup.out): realpath named that file, which open_new removed and made again, so what the command had written
    to it before was lost, and what it wrote after went to the removed file. The descriptor is written into, as
    the shell's `2>&1` writes one: both writers' lines, in order, in the one file."""
    from dpupose.fsio import open_new

    out = tmp_path / "build.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # as the shell's `> build.txt`
    try:
        link = tmp_path / "link.log"
        if via == "chain":  # a link to a link to /dev/fd/N, as /dev/stdout is one to /proc/self/fd/1
            (tmp_path / "fd").symlink_to(f"/dev/fd/{fd}")
            link.symlink_to("fd")
        else:
            link.symlink_to(via.format(fd=fd, pid=os.getpid()))
        inode = os.stat(out).st_ino
        os.write(fd, b"before\n")
        with open_new(link) as f:
            f.write(b"tool\n")
        os.write(fd, b"after\n")
        assert out.read_bytes() == b"before\ntool\nafter\n" and os.stat(out).st_ino == inode
        assert link.is_symlink()
    finally:
        os.close(fd)


def test_an_earlier_version_still_names_the_process_in_a_lock_file_with_a_command(tmp_path):
    """The lock file holds the holder's command beside its PID; an earlier version, refused by a lock a newer
    one holds, reads the file's first 64 bytes, stripped, as the PID, and named a 'PID\\ncommand' file's holder
    'another process'. The command is written past those 64 bytes (the PID's line padded with blanks), so the
    earlier reader still finds the PID alone, and this one both."""
    from dpupose.fsio import _holder_lines, _mark_holder

    def earlier_reader(fd: int) -> str:  # _lock_holder of the versions that wrote the PID only
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return f"process {holder}" if holder.isdigit() else "another process"

    fd = os.open(tmp_path / ".dpupose.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _mark_holder(fd, "python -m dpupose.demo")
        assert earlier_reader(fd) == f"process {os.getpid()}"
        assert _holder_lines(fd) == (str(os.getpid()), "python -m dpupose.demo")
        _mark_holder(fd)  # a cache's lock: the PID only
        assert earlier_reader(fd) == f"process {os.getpid()}"
        assert _holder_lines(fd) == (str(os.getpid()), None)
    finally:
        os.close(fd)


def test_not_a_file_names_what_is_there_and_leaves_a_path_it_cannot_look_at_to_the_caller(tmp_path):
    """What a path given as a file to read is instead; where the file system cannot look at the path at all (a
    name longer than it takes, ENAMETOOLONG, which Path.is_dir() raises), the caller's own words."""
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to("gone")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "notes.txt").write_text("x")
    assert not_a_file(tmp_path / "folder") == "is a folder"
    assert not_a_file(tmp_path / "fifo") == "is a FIFO"
    assert not_a_file("/dev/null") == "is a device"
    assert not_a_file(tmp_path / "dangling") == "is a symbolic link that leads nowhere (to gone)"
    assert not_a_file(str(tmp_path / "loop")) == "is a symbolic link that leads nowhere (to loop)"
    assert not_a_file(tmp_path / "none") == "no such file"
    assert not_a_file(tmp_path / "none", "does not exist") == "does not exist"
    assert not_a_file(tmp_path / "notes.txt" / "inside", "does not exist") == "does not exist"  # ENOTDIR
    too_long = tmp_path / ("x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1))
    assert not_a_file(too_long, "does not exist") == "does not exist"


def test_within_ties_a_path_to_a_folder_by_any_name(tmp_path, bind_mount):
    """A path is in a folder by its real path (a link to it or above it) and by a bind mount of the folder or of a
    folder above it elsewhere, which real paths do not tie together; a path that is not there yet counts by the
    folders above it; a sibling whose name starts with the folder's does not."""
    from dpupose.fsio import within

    plan = tmp_path / "work" / "plan"
    (plan / "sub").mkdir(parents=True)
    (tmp_path / "work" / "plan2").mkdir()
    (tmp_path / "link").symlink_to(plan)
    assert within(plan, plan) and within(plan / "sub" / "new" / "x.json", plan)
    assert within(tmp_path / "link" / "sub", plan) and within(plan / "sub", tmp_path / "link")
    assert not within(tmp_path / "work" / "plan2", plan) and not within(tmp_path / "work", plan)
    assert not within(tmp_path / "elsewhere" / "new", plan) and not within(plan, tmp_path / "missing")
    bound = bind_mount(tmp_path / "work")  # work/plan is bound/plan too
    assert within(bound / "plan" / "sub" / "new", plan) and within(bound / "plan", plan)
    assert within(plan / "sub", bound / "plan") and within(bound / "plan2" / "x", tmp_path / "work")
    assert not within(bound / "plan2", plan)


def test_what_is_at_names_each_kind_of_entry_in_one_phrase(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to("folder")
    (tmp_path / "dangling").symlink_to("gone")
    (tmp_path / "loop").symlink_to("loop")
    kinds = {n: what_is_at(tmp_path / n) for n in ("fifo", "file", "folder", "link", "dangling", "loop", "gone")}
    assert kinds == {
        "fifo": "a FIFO",
        "file": "a file",
        "folder": "a folder",
        "link": "a link to folder",
        "dangling": "a symbolic link that leads nowhere (to gone)",
        "loop": "a symbolic link that leads nowhere (to loop)",
        "gone": "nothing",
    }
    assert what_is_at("/dev/null") == "a device"


def test_within_takes_a_path_below_a_folder_not_made_yet(tmp_path):
    """By real path alone where the folder is not there (yet) to compare by device and inode: a path below it is in
    it, one below a sibling of a like name is not."""
    from dpupose.fsio import within

    missing = tmp_path / "missing"
    assert within(missing / "sub" / "x.json", missing) and within(missing / "x", tmp_path / "link" / ".." / "missing")
    assert not within(tmp_path / "missing2" / "x", missing) and not within(tmp_path, missing)


def test_same_entry_is_one_name_in_one_folder(tmp_path):
    """same_entry: the same file under the same name in the same folder, however the folder is named; a hard link
    of the same name in another folder, or under another name in the same folder, is another entry."""
    from dpupose.fsio import same_entry

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("x")
    os.link(tmp_path / "a" / "x", tmp_path / "b" / "x")
    os.link(tmp_path / "a" / "x", tmp_path / "a" / "y")
    (tmp_path / "to-a").symlink_to("a")
    assert same_entry(tmp_path / "a" / "x", tmp_path / "to-a" / "x")
    assert same_entry(tmp_path / "a" / "x", tmp_path / "b" / ".." / "a" / "x")
    assert not same_entry(tmp_path / "a" / "x", tmp_path / "b" / "x")
    assert not same_entry(tmp_path / "a" / "x", tmp_path / "a" / "y")


def test_what_is_at_a_name_it_cannot_look_at_says_so(tmp_path):
    """A name longer than the file system takes (ENAMETOOLONG, which pathlib's is_symlink raises) is 'something that
    cannot be examined', for the refusal that names it, not an OSError in its place."""
    too_long = tmp_path / ("x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1))
    assert what_is_at(too_long) == "something that cannot be examined"


def test_a_partial_being_written_is_this_process_s_until_removed(tmp_path):
    """new_partial's name is this process's while it is written: remove_stale_partials (another thread cleaning up
    beside the same image) leaves it, though its PID is this one's. remove_partial removes whatever is there, a
    symbolic link that leads nowhere included, and gives the name up: a file left at it later is stale."""
    from dpupose.fsio import new_partial, remove_partial, remove_stale_partials

    dest = tmp_path / "sd.img"
    partial = new_partial(dest)
    try:
        partial.write_bytes(b"half an image")
        remove_stale_partials(dest)
        assert partial.read_bytes() == b"half an image"
        partial.unlink()
        partial.symlink_to("gone")
    finally:
        remove_partial(partial)
    assert not os.path.lexists(partial)
    partial.write_bytes(b"left by a process of this PID before")
    remove_stale_partials(dest)
    assert list(tmp_path.iterdir()) == []


def test_read_own_json_reads_a_record_of_the_limit_and_not_one_byte_more(tmp_path, monkeypatch):
    """The size limit is exact: a record that parses, padded with blanks to OWN_JSON_LIMIT bytes, is read; one byte
    more and it is not (a limit of 100 bytes stands in for the 64 MiB)."""
    import dpupose.fsio as fsio

    monkeypatch.setattr(fsio, "OWN_JSON_LIMIT", 100)
    path = tmp_path / "r.json"
    path.write_text('{"generated_by": "dpupose bench"}'.ljust(100))
    assert read_own_json(path) == {"generated_by": "dpupose bench"}
    path.write_text('{"generated_by": "dpupose bench"}'.ljust(101))
    assert read_own_json(path) is None


def test_a_link_whose_target_cannot_be_read_is_said_to_lead_nowhere_without_one(tmp_path, monkeypatch):
    """dangling_link names the target the link holds; where that cannot be read (the link removed or replaced
    by a file since), the phrase without it, not a target made up."""
    from dpupose import fsio

    (tmp_path / "dangling").symlink_to("gone")
    assert fsio.dangling_link(tmp_path / "dangling") == "a symbolic link that leads nowhere (to gone)"
    (tmp_path / "file").write_text("x")
    assert fsio.dangling_link(tmp_path / "file") == "a symbolic link that leads nowhere"  # EINVAL: no link
    assert fsio.dangling_link(tmp_path / "none") == "a symbolic link that leads nowhere"  # ENOENT: gone since
