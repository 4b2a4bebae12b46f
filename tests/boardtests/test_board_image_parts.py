"""The SD image's building blocks on their own: the partition table and superblock readers, the FAT
writer, the tool runner, the copy progress bar, the first-boot script and unit, and the manifest."""

import configparser
import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

import pytest

from boardtests.helpers import MiB, needs_image_tools, run, tool
from dpupose.board import layout, tools
from dpupose.board.fatfs import FatFs
from dpupose.board.firstboot import firstboot_script, firstboot_unit
from dpupose.board.manifest import build_manifest, check_files, parse_manifest
from dpupose.board.partitions import Partition, find_pynq_partitions, read_ext, read_fat, read_mbr
from dpupose.board.progress import Progress
from dpupose.board.tools import CommandRunner, run_tool
from dpupose.errors import ArtifactError, ImageError, ToolFailed

# Four primary partitions of 8 MiB from 1 MiB on, the last ending where the file ends: a FAT labelled
# OTHER (type 0x0c), a FAT labelled PYNQ (type 0x0e, FAT16 with LBA), the ext4 root and another ext4.
PARTS = [(1, 0x0C, "OTHER"), (2, 0x0E, "PYNQ"), (3, 0x83, "root"), (4, 0x83, "data")]
PART_SIZE = 8 * MiB
FOUR_SIZE = MiB + 4 * PART_SIZE


def start(number):
    return MiB + (number - 1) * PART_SIZE


@pytest.fixture(scope="module")
def four_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("four") / "four.img"
    with path.open("wb") as f:
        f.truncate(FOUR_SIZE)
    table = "label: dos\n" + "".join(
        f"start={start(n) // 512}, size={PART_SIZE // 512}, type={t:x}\n" for n, t, _ in PARTS
    )
    run("sfdisk", "-q", str(path), input=table.encode())
    for n, t, label in PARTS:
        if t == 0x83:
            run("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", label, "-E", f"offset={start(n)}", str(path), "8M")
        else:
            run("mkfs.vfat", "-n", label, "--offset", str(start(n) // 512), str(path), str(PART_SIZE // 1024))
    return path


@pytest.fixture
def four(four_base, tmp_path):
    dest = tmp_path / "four.img"
    shutil.copyfile(four_base, dest)
    return dest


def poke(path, offset, fmt, *values):
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


@needs_image_tools
def test_four_partitions_the_last_ending_with_the_file_are_read_as_sfdisk_lists_them(four):
    table = json.loads(subprocess.run([tool("sfdisk"), "--json", str(four)], capture_output=True, check=True).stdout)
    listed = [(e["start"] * 512, e["size"] * 512, int(e["type"], 16)) for e in table["partitiontable"]["partitions"]]
    parts = read_mbr(four)
    assert [(p.offset, p.size, p.type_id) for p in parts] == listed
    assert [p.number for p in parts] == [1, 2, 3, 4] and parts[3].end == FOUR_SIZE == four.stat().st_size
    # The boot partition is the FAT labelled PYNQ, not the first FAT; the root the first ext4.
    found = find_pynq_partitions(four)
    assert (found.boot.number, found.boot_fs.label, found.boot_fs.size) == (2, "PYNQ", PART_SIZE)
    assert (found.root.number, found.root_fs.label) == (3, "root")
    # An entry of no sectors is no partition, whatever its type byte says.
    poke(four, 446 + 16 * 3 + 12, "<I", 0)
    assert [p.number for p in read_mbr(four)] == [1, 2, 3]


@needs_image_tools
def test_a_table_without_its_signature_or_a_gpt_disk_is_not_read_as_an_mbr(four, tmp_path):
    unsigned = tmp_path / "unsigned.img"
    shutil.copyfile(four, unsigned)
    poke(unsigned, 510, "<H", 0)  # the four entries are still there
    with pytest.raises(ImageError, match=r"unsigned\.img has no MBR partition table: is it a PYNQ SD card image"):
        read_mbr(unsigned)
    # A GPT disk (made by sfdisk) carries a protective MBR of one 0xEE entry: flash takes it as it is.
    gpt = tmp_path / "gpt.img"
    with gpt.open("wb") as f:
        f.truncate(4 * MiB)
    run("sfdisk", "-q", str(gpt), input=b"label: gpt\nstart=2048, size=4096\n")
    with pytest.raises(ImageError, match=r"gpt\.img has a GPT partition table; PYNQ images use MBR"):
        read_mbr(gpt)
    assert read_mbr(gpt, gpt_ok=True) == []


@needs_image_tools
def test_a_fat_boot_sector_s_own_fields_decide_what_it_is_and_how_big(four):
    p1, p2 = read_mbr(four)[:2]
    assert read_fat(four, p1).label == "OTHER"
    poke(four, start(1) + 0x26, "B", 0)  # no extended BPB signature: the label field means nothing
    assert read_fat(four, p1).label == ""
    # An 8 MiB FAT keeps its size in the 16-bit field (16384 sectors); one sector more than the partition.
    assert struct.unpack_from("<H", four.read_bytes()[start(2) : start(2) + 512], 0x13)[0] == 16384
    poke(four, start(2) + 0x13, "<H", 16385)
    with pytest.raises(ImageError, match=r"FAT file system in partition 2 .* claims 8389120 bytes but the partition"):
        find_pynq_partitions(four)
    # A sector size no FAT has: not a FAT, so the boot partition is the other one.
    poke(four, start(2) + 0x0B, "<H", 0)
    assert read_fat(four, p2) is None
    assert find_pynq_partitions(four).boot.number == 1


@needs_image_tools
def test_a_64_bit_ext4_s_high_words_count_and_others_ignore_them(four, tmp_path):
    root = read_mbr(four)[2]
    before = read_ext(four, root)
    assert (before.blocks, before.block_size) == (2048, 4096)
    poke(four, start(3) + 1024 + 0x150, "<III", 3, 1, 2)  # blocks, reserved, free: high 32 bits
    ext = read_ext(four, root)
    assert ext.blocks == 2048 + 3 * 2**32
    assert ext.reserved_blocks == before.reserved_blocks + 2**32
    assert ext.free_blocks == before.free_blocks + 2 * 2**32
    with pytest.raises(ImageError, match=r"ext4 file system in partition 3 .* claims 52776566521856 bytes"):
        find_pynq_partitions(four)
    small = tmp_path / "small.img"
    with small.open("wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.ext4", "-q", "-F", "-b", "1024", "-O", "^64bit", str(small))  # blocks of 1 KiB: 8192 of them
    whole = Partition(1, 0x83, False, 0, 8 * MiB)
    assert (read_ext(small, whole).block_size, read_ext(small, whole).blocks) == (1024, 8192)
    poke(small, 1024 + 0x150, "<III", 3, 1, 2)  # not a 64-bit file system: these bytes are no count
    assert read_ext(small, whole).blocks == 8192


@needs_image_tools
def test_a_file_too_big_for_the_boot_partition_is_said_to_fill_it(four, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (PART_SIZE + MiB))
    fat = FatFs(four, read_mbr(four)[1])
    with pytest.raises(ImageError, match=r"^the boot partition is full: .*Disk full"):
        fat.put(big, "/big.bin")
    assert fat.read("/none.txt") is None


@needs_image_tools
def test_an_image_named_with_shell_characters_is_reached_by_a_relative_path_too(four, tmp_path, monkeypatch):
    odd = tmp_path / "card$x.img"
    four.rename(odd)
    note = tmp_path / "note.txt"
    note.write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    fat = FatFs(Path("card$x.img"), read_mbr(odd)[1])
    fat.makedirs("/d")
    fat.makedirs("/d")  # already there: nothing to do
    fat.put(note, "/d/note.txt")
    assert fat.read("/d/note.txt") == b"hello\n"
    # The link lives in a temporary folder: one whose name mtools would expand too is refused.
    shell_tmp = tmp_path / "tmp$y"
    shell_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shell_tmp))
    with pytest.raises(ImageError, match=r"has such characters too: set TMPDIR to a plain folder"):
        fat.read("/d/note.txt")


def test_a_tool_runs_in_the_caller_s_environment_with_the_variables_given_added():
    out = run_tool(["sh", "-c", 'echo "$DPUPOSE_TEST_VAR $HOME"'], env={"DPUPOSE_TEST_VAR": "given"}).stdout
    assert out == f"given {os.environ['HOME']}\n"


def test_a_failed_tool_s_message_in_bytes_that_are_not_utf8_is_still_shown():
    with pytest.raises(ToolFailed, match=r"failed \(exit 2\): \ufffdbad card"):
        run_tool(["sh", "-c", r"printf '\377bad card' >&2; exit 2"], text=False)


def test_the_command_runner_leaves_the_terminal_to_the_tool_and_checks_only_when_asked(capfd):
    proc = CommandRunner().run(["sh", "-c", "echo to the terminal; exit 3"], check=False)
    assert proc.returncode == 3 and proc.stdout is None
    assert capfd.readouterr().out == "to the terminal\n"
    with pytest.raises(ToolFailed, match=r"exit 3"):
        CommandRunner().run(["sh", "-c", "exit 3"])


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_copy_bar_at_and_past_its_total_is_full_with_no_time_left():
    """8 MiB of 8 MiB after 4 s: 100.0%, the bar full, 2 MiB/s and no ETA; 10 MiB of 8 MiB (a device that
    reads back more than the image) is no fuller; a total of 0 (or less) is done from the start."""
    now = [0.0]
    bar = Progress(8 * MiB, "write", enabled=True, stream=io.StringIO(), clock=lambda: now[0])
    now[0] = 4.0
    bar.done = 8 * MiB
    assert bar.line() == f"write [{'#' * 30}] 100.0% 8.0 MiB / 8.0 MiB 2.0 MiB/s"
    bar.done = 10 * MiB
    assert bar.line() == f"write [{'#' * 30}] 100.0% 10.0 MiB / 8.0 MiB 2.5 MiB/s"
    for total in (0, -5):
        empty = Progress(total, "verify", enabled=True, stream=io.StringIO(), clock=lambda: now[0])
        assert empty.line() == f"verify [{'#' * 30}] 100.0% 0 B / 0 B 0 B/s"


def test_the_copy_bar_on_a_terminal_narrower_than_20_columns_keeps_20(monkeypatch):
    monkeypatch.setenv("COLUMNS", "8")
    tty = Tty()
    bar = Progress(4 * MiB, "write ", enabled=True, stream=tty, clock=lambda: 1.0)
    bar.close()
    assert tty.getvalue() == "\r" + bar.line()[:20] + "\x1b[K\n"


def run_firstboot(tmp_path, *, online_after, setup_code, wheel="dpupose-0.1.0-py3-none-any.whl"):
    """The first-boot script as the unit runs it, against stand-ins for the network check, sleep, the
    clock, the setup script and systemctl; returns (exit code, log, sleeps, setup's argv, systemctl's)."""
    state = tmp_path / "state"
    stubs = tmp_path / "bin"
    for d in (state, stubs):
        d.mkdir(exist_ok=True)
    log = tmp_path / "firstboot.log"
    tries = state / "tries"
    tries.write_text("0")
    stub = {
        # online() after `online_after` failed tries
        "python3": f'n=$(cat {tries}); echo $((n + 1)) > {tries}; [ "$n" -ge {online_after} ]',
        "sleep": f'echo "$1" >> {state}/sleeps',
        "date": 'case "$1" in +%s) echo 4000000000;; -s) echo "set $2" >> ' + f"{state}/date;; *) echo iso;; esac",
        "bash": f'echo "$*" >> {state}/setup; exit {setup_code}',
        "systemctl": f'echo "$*" >> {state}/systemctl',
    }
    for name, body in stub.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    for program in ("stat", "cat"):
        if not (stubs / program).exists():
            (stubs / program).symlink_to(shutil.which(program))
    text = firstboot_script(wheel)
    assert text.count(str(layout.FIRSTBOOT_LOG)) == 1
    script = tmp_path / "firstboot.sh"
    script.write_text(text.replace(str(layout.FIRSTBOOT_LOG), str(log)))
    proc = subprocess.run(
        [shutil.which("bash"), str(script)], env={"PATH": str(stubs)}, capture_output=True, timeout=60
    )
    assert proc.stdout == b"" and proc.stderr == b""  # all of it into the log

    def lines(name):
        path = state / name
        return path.read_text().splitlines() if path.exists() else []

    return proc.returncode, log.read_text(), lines("sleeps"), lines("setup"), lines("systemctl")


def test_first_boot_without_network_gives_up_after_ten_minutes_and_runs_nothing(tmp_path):
    code, log, sleeps, setup, systemctl = run_firstboot(tmp_path, online_after=10**6, setup_code=0)
    assert (code, sleeps, setup, systemctl) == (1, ["10"] * 60, [], [])
    assert "no network after 600 s; will try again at the next boot" in log
    assert "sudo bash /home/xilinx/dpupose/board_setup.sh /home/xilinx/dpupose/wheels/dpupose-0.1.0" in log


def test_first_boot_runs_the_setup_once_online_and_disables_itself_only_when_it_succeeded(tmp_path):
    wheel_path = f"{layout.WHEEL_DIR}/dpupose-0.1.0-py3-none-any.whl"
    code, log, sleeps, setup, systemctl = run_firstboot(tmp_path, online_after=2, setup_code=1)
    assert (code, sleeps, setup, systemctl) == (1, ["10", "10"], [f"{layout.SETUP_SCRIPT} {wheel_path}"], [])
    assert "setup failed; will try again at the next boot" in log
    code, log, sleeps, setup, systemctl = run_firstboot(tmp_path, online_after=0, setup_code=0)
    assert (code, systemctl) == (0, ["disable dpupose-firstboot.service"])
    assert setup == [f"{layout.SETUP_SCRIPT} {wheel_path}"] * 2 and sleeps == ["10", "10"]
    # The log keeps every boot's attempt, and the clock (ahead of the staging time) was left alone.
    assert log.count("dpupose first-boot setup\n") == 2 and "done; dpupose-firstboot.service disabled" in log
    assert not (tmp_path / "state" / "date").exists()


def test_the_first_boot_unit_waits_for_the_network_runs_to_the_end_and_is_wanted_where_it_is_linked():
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str
    unit.read_string(firstboot_unit())
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert unit["Unit"]["ConditionPathExists"] == "/home/xilinx/dpupose/firstboot.sh"
    # A oneshot that systemd gives all the time it takes: pip installs for many minutes on the A53, past
    # the 90 s a start may take by default.
    assert dict(unit["Service"]) == {
        "Type": "oneshot",
        "ExecStart": "/bin/bash /home/xilinx/dpupose/firstboot.sh",
        "TimeoutStartSec": "0",
    }
    # `systemctl enable` would link it into the .wants folder of the target it names.
    wanted_by = unit["Install"]["WantedBy"]
    wants = PurePosixPath(f"/etc/systemd/system/{wanted_by}.wants/{layout.FIRSTBOOT_UNIT_NAME}")
    assert wants == layout.FIRSTBOOT_WANTS
    assert layout.FIRSTBOOT_UNIT.name == layout.FIRSTBOOT_UNIT_NAME


def test_sha256sums_lists_the_files_under_the_board_folder_as_sha256sum_checks_them(tmp_path):
    base = PurePosixPath("/home/xilinx/dpupose")
    names = ["model/cpu/head part.onnx", "overlay/dpu.bit", "wheels/w.whl"]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(bytes([i]) * 100)
    outside = tmp_path / "unit"
    outside.write_text("[Unit]\n")
    files = [(tmp_path / n, base / n) for n in names] + [(outside, PurePosixPath("/etc/systemd/system/x.service"))]
    manifest = build_manifest(files, overlay_fingerprint=None, plan_fingerprint=None, wheel="w.whl")
    (tmp_path / "SHA256SUMS").write_text(manifest.sha256sums(base))
    check = ["sha256sum", "--check", "--strict", "SHA256SUMS"]
    proc = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"{n}: OK" for n in names]  # the unit, outside the folder, not listed


def test_the_manifest_lists_files_by_board_path_whatever_order_they_are_given_in(tmp_path):
    pairs = []
    for name in ("c", "a", "b"):
        (tmp_path / name).write_text(name)
        pairs.append((tmp_path / name, PurePosixPath(f"/x/{name}")))
    for given in (pairs, pairs[::-1]):
        doc = json.loads(build_manifest(given, overlay_fingerprint=None, plan_fingerprint=None, wheel="w").to_json())
        assert [f["path"] for f in doc["files"]] == ["/x/a", "/x/b", "/x/c"]


def test_a_file_changed_in_place_at_its_size_or_a_folder_where_it_was_is_not_ok(tmp_path):
    (tmp_path / "a").write_bytes(b"original")
    (tmp_path / "b").write_bytes(b"original")
    manifest = build_manifest(
        [(tmp_path / "a", PurePosixPath("/x/a")), (tmp_path / "b", PurePosixPath("/x/b"))],
        overlay_fingerprint=None,
        plan_fingerprint=None,
        wheel="w",
    )
    (tmp_path / "a").write_bytes(b"tampered")  # 8 bytes, as before
    (tmp_path / "b").unlink()
    (tmp_path / "b").mkdir()
    checks = check_files(manifest, lambda path: tmp_path / PurePosixPath(path).name)
    assert [(c.entry.path, c.status) for c in checks] == [("/x/a", "changed"), ("/x/b", "missing")]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[]", r"not readable \('list' object has no attribute 'get'\)"),
        ('{"format": "dpupose-staged/1", "files": null}', r"not readable \('NoneType' object is not iterable\)"),
        ('{"format": "dpupose-staged/1", "files": [{"path": "/a", "size": null, "sha256": "0"}]}', r"not readable"),
        ('{"format": "dpupose-staged/2"}', r"format dpupose-staged/2, written by a newer dpupose; "),
        ('{"format": "dpupose-staged/2", "generated_by": 7}', r"format dpupose-staged/2, written by a newer dpupose; "),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_an_error_that_says_what_to_do(text, said):
    with pytest.raises(ArtifactError, match=said):
        parse_manifest(text, "card.img")


def test_the_board_command_docs_runtime_md_shows_is_the_one_stage_and_deploy_print():
    import re
    import shlex

    text = (Path(__file__).resolve().parents[2] / "docs" / "runtime.md").read_text()
    section = text.split("## On the board", 1)[1]
    shown = re.search(r"```sh\n(sudo bash -c .*?)\n```", section, re.S).group(1)

    def words(command):
        outer = shlex.split(command)
        return outer[:3], outer[3].replace("\\\n", " ").split()  # the inner shell joins its lines

    assert words(shown) == words(layout.run_command("vart"))


def test_a_tool_on_path_comes_before_the_system_folders(tmp_path, monkeypatch):
    bin_dir, sbin = tmp_path / "bin", tmp_path / "sbin"
    for folder in (bin_dir, sbin):
        folder.mkdir()
        (folder / "debugfs").write_text("#!/bin/sh\necho " + folder.name + "\n")
        (folder / "debugfs").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(tools, "SYSTEM_DIRS", (str(sbin),))
    assert tools.require_tool("debugfs") == str(bin_dir / "debugfs")
    assert tools.run_tool(["debugfs"]).stdout == "bin\n"
    (bin_dir / "debugfs").unlink()
    assert tools.run_tool(["debugfs"]).stdout == "sbin\n" and tools.have_tool("debugfs")


def test_the_tests_find_the_image_tools_in_the_system_folders(tmp_path, monkeypatch):
    """The image tests' own lookup: sfdisk, mkfs.*, e2fsck and debugfs are in /usr/sbin on Debian, which an
    ordinary user's PATH lacks, and every image test was skipped for such a user as if they were missing."""
    from boardtests import helpers

    bin_dir, sbin = tmp_path / "bin", tmp_path / "sbin"
    bin_dir.mkdir()
    sbin.mkdir()
    (sbin / "sfdisk").write_text('#!/bin/sh\necho sbin "$@"\n')
    (sbin / "sfdisk").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(helpers, "SYSTEM_DIRS", ("/nonexistent", str(sbin)))
    assert helpers.tool("sfdisk") == str(sbin / "sfdisk")
    assert helpers.run("sfdisk", "--json", "x.img").stdout == b"sbin --json x.img\n"
    assert helpers.tool("no-such-tool") == "no-such-tool"
