"""Staging onto a real (small) image, read back independently with debugfs, mtools and e2fsck."""

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boardtests.helpers import (
    FAT_START,
    OLD_CARD,
    ROOT_START,
    debugfs_cat,
    needs_image_tools,
    sha256,
    tool,
    xmodel_bytes,
)
from dpupose import fsio
from dpupose.board import layout
from dpupose.board import stage as stagemod
from dpupose.board.partitions import find_pynq_partitions, read_ext, read_mbr
from dpupose.board.stage import list_staged, stage
from dpupose.board.wheel import check_wheel, wheel_requirements
from dpupose.errors import (
    ArtifactError,
    DeviceError,
    FingerprintMismatch,
    ImageError,
    ToolFailed,
    ToolNotFoundError,
    UsageError,
)

pytestmark = needs_image_tools
ROOT = str(layout.BOARD_ROOT)


def fingerprint_of(path):
    st = path.stat()
    return sha256(path), st.st_mtime_ns


def staged_files(overlay, model, wheel):
    """Host file -> board path, written out independently of dpupose.board.artifacts."""
    pairs = {overlay / n: f"{ROOT}/overlay/{n}" for n in ("dpu.bit", "dpu.hwh", "dpu.xclbin", "arch.json")}
    pairs[model / "plan.json"] = f"{ROOT}/model/plan.json"
    pairs[model / "dpu_part.xmodel"] = f"{ROOT}/model/dpu_part.xmodel"
    pairs[model / "dpu0.onnx"] = f"{ROOT}/model/dpu0.onnx"
    pairs[model / "cpu" / "head part.onnx"] = f"{ROOT}/model/cpu/head part.onnx"
    pairs[wheel] = f"{ROOT}/wheels/{wheel.name}"
    return pairs


def boot_file(image, name):
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    cmd = [tool("mtype"), "-i", f"{image}@@{FAT_START}", f"::/dpupose/{name}"]
    return subprocess.run(cmd, capture_output=True, env=env, check=True).stdout


def ls_p(image, path):
    out = subprocess.run(
        [tool("debugfs"), "-R", f"ls -p {path}", f"{image}?offset={ROOT_START}"], capture_output=True, text=True
    ).stdout
    rows = [line.split("/") for line in out.splitlines() if line.startswith("/")]
    return {r[5]: (int(r[2], 8), int(r[3]), int(r[4])) for r in rows if r[5] not in (".", "..")}


def test_mbr_and_superblocks_match_sfdisk_and_dumpe2fs(image):
    table = json.loads(subprocess.run([tool("sfdisk"), "--json", str(image)], capture_output=True, check=True).stdout)
    parts = read_mbr(image)
    assert [(p.offset // 512, p.size // 512) for p in parts] == [
        (e["start"], e["size"]) for e in table["partitiontable"]["partitions"]
    ]
    layout_ = find_pynq_partitions(image)
    assert layout_.boot.offset == FAT_START and layout_.boot_fs.label == "PYNQ"
    dump = subprocess.run(
        [tool("dumpe2fs"), "-h", f"{image}?offset={ROOT_START}"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in dump.splitlines() if ":" in line)
    ext = read_ext(image, layout_.root)
    assert ext.blocks == int(fields["Block count"])
    assert ext.free_blocks == int(fields["Free blocks"])
    assert ext.reserved_blocks == int(fields["Reserved block count"])
    assert ext.free_inodes == int(fields["Free inodes"])
    assert ext.block_size == int(fields["Block size"])
    assert ext.label == "root"


def _poke(path, offset, fmt, value):
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def test_damaged_images_are_refused_before_anything_is_written(image, tmp_path):
    layout_ = find_pynq_partitions(image)
    root_end = layout_.root.end
    # A partition that runs past the end of the file (a truncated download).
    cut = tmp_path / "cut.img"
    shutil.copyfile(image, cut)
    os.truncate(cut, root_end - 4096)
    with pytest.raises(ImageError, match=rf"truncated: partition 2 ends at byte {root_end}"):
        read_mbr(cut)
    # File systems that claim one block / sector more than their partition: debugfs and mtools would
    # trust them and could write past the partition.
    ext = tmp_path / "ext.img"
    shutil.copyfile(image, ext)
    blocks = layout_.root.size // layout_.root_fs.block_size
    _poke(ext, ROOT_START + 1024 + 0x04, "<I", blocks + 1)
    with pytest.raises(ImageError, match=r"ext4 file system in partition 2 .* claims \d+ bytes but the partition"):
        find_pynq_partitions(ext)
    fat = tmp_path / "fat.img"
    shutil.copyfile(image, fat)
    _poke(fat, FAT_START + 0x13, "<H", 0)
    _poke(fat, FAT_START + 0x20, "<I", layout_.boot.size // 512 + 1)
    with pytest.raises(ImageError, match=r"FAT file system in partition 1 .* claims \d+ bytes but the partition"):
        find_pynq_partitions(fat)
    # A root file system whose journal needs replaying.
    dirty = tmp_path / "dirty.img"
    shutil.copyfile(image, dirty)
    with image.open("rb") as f:
        f.seek(ROOT_START + 1024 + 0x60)
        incompat = struct.unpack("<I", f.read(4))[0]
    _poke(dirty, ROOT_START + 1024 + 0x60, "<I", incompat | 0x4)  # EXT4_FEATURE_INCOMPAT_RECOVER
    with pytest.raises(ImageError, match="not unmounted cleanly"):
        find_pynq_partitions(dirty)
    find_pynq_partitions(image)  # the undamaged original is fine


def test_stage_into_a_copy(image, overlay, model, wheel, tmp_path, cli, capsys):
    before = fingerprint_of(image)
    out = tmp_path / "staged.img"
    report = stage(image, overlay, model, out=out, wheel=wheel)
    assert report.image == out
    assert "matches" in report.verdict
    assert fingerprint_of(image) == before  # the original is untouched
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []

    # Every file reads back (with debugfs directly) with the source's SHA-256.
    for src, dest in staged_files(overlay, model, wheel).items():
        data = debugfs_cat(out, ROOT_START, f'"{dest}"')
        assert data is not None, dest
        assert hashlib.sha256(data).hexdigest() == sha256(src), dest

    # Owners: the xilinx user of the image's /etc/passwd; the scripts root's and executable.
    overlay_dir = ls_p(out, f"{ROOT}/overlay")
    assert overlay_dir["dpu.bit"] == (0o100644, 1000, 1000)
    top = ls_p(out, ROOT)
    assert top["board_setup.sh"] == (0o100755, 0, 0)
    assert top["firstboot.sh"] == (0o100755, 0, 0)
    assert top["model"][1:] == (1000, 1000)
    wants = ls_p(out, "/etc/systemd/system/multi-user.target.wants")
    assert wants[layout.FIRSTBOOT_UNIT_NAME][0] & 0o170000 == 0o120000
    unit = debugfs_cat(out, ROOT_START, str(layout.FIRSTBOOT_UNIT)).decode()
    assert f"ExecStart=/bin/bash {layout.FIRSTBOOT_SCRIPT}" in unit

    # The manifest on the boot partition (mtools directly) lists the same sums.
    boot = boot_file(out, "manifest.json")
    listed = {f["path"]: f["sha256"] for f in json.loads(boot)["files"]}
    for src, dest in staged_files(overlay, model, wheel).items():
        assert listed[dest] == sha256(src)
    assert json.loads(boot)["overlay_fingerprint"] == json.loads((overlay / "arch.json").read_text())["fingerprint"]

    # The note on the boot partition gives the command that runs the model on the DPU.
    readme = boot_file(out, "README.txt").decode()
    assert report.run_command in readme and "--backend vart" in report.run_command
    # ... and where the first boot puts the notebook: Jupyter's folder on PYNQ 3.0.1.
    assert (
        "puts the notebook into Jupyter (port 9090):\n/home/xilinx/jupyter_notebooks/dpupose/pose_camera.ipynb"
        in readme
    )
    assert f"--overlay {layout.OVERLAY_DIR}" in report.run_command

    # The file system is consistent after debugfs's writes.
    fsck = subprocess.run([tool("e2fsck"), "-fn", f"{out}?offset={ROOT_START}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    assert cli(["sdcard", "ls", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "all SHA-256 sums match" in shown and "first-boot setup enabled" in shown
    assert f"{ROOT}/model/cpu/head part.onnx" in shown


@pytest.mark.parametrize("name", ["card$(touch ran).img", "card$HOME.img", "`touch ran`.img", "~card.img", "a@@b.img"])
def test_an_image_name_with_shell_characters_is_staged_and_listed_as_it_is(
    image, overlay, model, wheel, tmp_path, monkeypatch, cli, capsys, name
):
    # mtools gives such a name to /bin/sh to expand: the command in it ran, or another file was opened.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / name
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    hint = next(line for line in lines if line.startswith("list them: "))
    assert shlex.split(hint.removeprefix("list them: ")) == ["dpupose", "sdcard", "ls", str(out)]  # pastes as it is
    hint = next(line for line in lines if line.startswith("write it to a card: "))  # the next step
    assert shlex.split(hint.removeprefix("write it to a card: ")) == [
        "dpupose", "sdcard", "flash", str(out), "--device", "/dev/sdX"
    ]  # fmt: skip
    assert cli(["sdcard", "ls", str(out)]) == 0
    assert "all SHA-256 sums match" in capsys.readouterr().out
    plain = tmp_path / "plain.img"  # read back by mtools directly, under a name it takes as it is
    os.link(out, plain)
    listed = {f["path"]: f["sha256"] for f in json.loads(boot_file(plain, "manifest.json"))["files"]}
    assert listed[f"{ROOT}/wheels/{wheel.name}"] == sha256(wheel)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted([name, "plain.img", "pynq.img"])
    assert list(work.iterdir()) == []  # nothing ran in the current folder


def test_a_copy_onto_a_read_only_file_system_names_the_out_the_user_gave(
    image, overlay, model, wheel, small_fs, cli, capsys
):
    # The clean-up of the copy that was never made failed too (unlink: EROFS) and was reported instead,
    # naming the hidden .NAME.PID-XXXXXXXX.partial.
    out = small_fs(1024, read_only=True) / "staged.img"
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"dpupose: error: {out} is on a read-only file system: write elsewhere, or remount it read-write\n"
    )


def test_source_folders_with_quotes_or_newlines_in_their_names_are_staged(image, overlay, model, wheel, tmp_path):
    # debugfs's command parser cannot take such a name: staging stopped ("cannot pass a path with quotes").
    odd_model = shutil.copytree(model, tmp_path / 'my "best"\nmodel')
    odd_overlay = shutil.copytree(overlay, tmp_path / 'hw "b1600"')
    out = tmp_path / "staged.img"
    stage(image, odd_overlay, odd_model, out=out, wheel=wheel)
    for src, dest in staged_files(odd_overlay, odd_model, wheel).items():
        data = debugfs_cat(out, ROOT_START, f'"{dest}"')
        assert data is not None and hashlib.sha256(data).hexdigest() == sha256(src), dest


def test_stage_from_compressed_image(image, base_xz, overlay, model, wheel, tmp_path):
    xz = tmp_path / "pynq.img.xz"
    xz.write_bytes(base_xz)
    out = tmp_path / "staged.img"
    stage(xz, overlay, model, out=out, wheel=wheel)
    listing = list_staged(out)
    assert listing is not None and {c.status for c in listing.checks} == {"ok"}
    assert xz.read_bytes() == base_xz


def test_default_output_goes_under_build(image, overlay, model, wheel, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = stage(image, overlay, model, wheel=wheel)
    assert report.image == stagemod.DEFAULT_OUT_DIR / "pynq-dpupose.img"
    assert (tmp_path / "build/sdcard/pynq-dpupose.img").is_file()


def test_in_place_restage_replaces_and_prunes(image, overlay, model, wheel):
    stage(image, overlay, model, in_place=True, wheel=wheel)
    assert debugfs_cat(image, ROOT_START, f"{ROOT}/model/dpu_part.xmodel") is not None
    # A new model with another xmodel (its plan says so) and a changed overlay.
    (model / "dpu_part.xmodel").unlink()
    (model / "other.xmodel").write_bytes(xmodel_bytes("new model"))
    plan = json.loads((model / "plan.json").read_text())
    plan["subgraphs"][0]["xmodel"] = "other.xmodel"
    (model / "plan.json").write_text(json.dumps(plan))
    (overlay / "dpu.bit").write_bytes(b"new bitstream" * 1000)
    stage(image, overlay, model, in_place=True, wheel=wheel)
    assert debugfs_cat(image, ROOT_START, f"{ROOT}/model/dpu_part.xmodel") is None
    assert debugfs_cat(image, ROOT_START, f"{ROOT}/model/other.xmodel") == xmodel_bytes("new model")
    assert debugfs_cat(image, ROOT_START, f"{ROOT}/overlay/dpu.bit") == b"new bitstream" * 1000
    listing = list_staged(image)
    assert {c.status for c in listing.checks} == {"ok"}
    fsck = subprocess.run([tool("e2fsck"), "-fn", f"{image}?offset={ROOT_START}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout


def test_changed_file_is_reported_by_ls(image, overlay, model, wheel, tmp_path, cli, capsys):
    stage(image, overlay, model, in_place=True, wheel=wheel)
    evil = tmp_path / "evil"
    evil.write_bytes(b"tampered")
    target = f"{ROOT}/overlay/dpu.hwh"
    subprocess.run(
        [tool("debugfs"), "-w", "-R", f"rm {target}", f"{image}?offset={ROOT_START}"],
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [tool("debugfs"), "-w", "-R", f"write {evil} {target}", f"{image}?offset={ROOT_START}"],
        capture_output=True,
        check=True,
    )
    assert cli(["sdcard", "ls", str(image)]) == 1  # a failed check, as nothing staged; 2 is for bad input
    captured = capsys.readouterr()
    assert "changed" in captured.out and target in captured.out
    assert captured.out.splitlines()[-1] == f"{image}: 1 of 12 files changed or missing: stage it again"
    assert captured.err == ""


def test_nothing_staged(image, cli, capsys):
    assert list_staged(image) is None
    assert cli(["sdcard", "ls", str(image)]) == 1
    assert "nothing staged" in capsys.readouterr().out


def test_missing_overlay_file_writes_nothing(image, overlay, model, wheel, tmp_path):
    before = fingerprint_of(image)
    (overlay / "dpu.xclbin").unlink()
    with pytest.raises(ArtifactError, match=rf"^--overlay {re.escape(str(overlay))} lacks dpu\.xclbin: "):
        stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    with pytest.raises(ArtifactError, match=r"lacks dpu\.xclbin"):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert not (tmp_path / "out.img").exists()
    assert fingerprint_of(image) == before


def test_a_plan_without_a_compiled_xmodel_is_staged_to_run_on_the_cpu(image, overlay, model, wheel, tmp_path):
    plan = json.loads((model / "plan.json").read_text())
    del plan["subgraphs"][0]["xmodel"]
    (model / "plan.json").write_text(json.dumps(plan))
    report = stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    assert "--backend cpu" in report.run_command and "--overlay" not in report.run_command
    assert "no compiled .xmodel for DPU subgraph dpu0" in report.backend_note
    readme = boot_file(tmp_path / "out.img", "README.txt").decode()
    assert report.run_command in readme and report.backend_note in readme


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda data: data[: len(data) // 2],
            r"is not an xmodel XIR can read \(as its protobuf: field 1's 149996 bytes running past the end",
        ),
        (lambda data: b"", r"xmodel .*dpu_part\.xmodel is empty"),
        (lambda data: b'{"version": 1}', r"is not an xmodel XIR can read"),
    ],
    ids=["cut short", "empty", "a plan.json under its name"],
)
def test_a_compiled_xmodel_xir_cannot_read_is_refused_before_anything_is_written(
    image, overlay, model, wheel, tmp_path, damage, message
):
    # The card's README.txt gives the vart command for a plan that records its .xmodel, and `dpupose run --backend
    # vart` there refuses one XIR cannot parse: staged as it was, the card only failed on the board.
    before = fingerprint_of(image)
    xmodel = model / "dpu_part.xmodel"
    xmodel.write_bytes(damage(xmodel.read_bytes()))
    with pytest.raises(ArtifactError, match=message + r".*could not run this plan with --backend vart"):
        stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    with pytest.raises(ArtifactError, match=message):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert not (tmp_path / "out.img").exists()
    assert fingerprint_of(image) == before


def test_a_compiled_xmodel_other_than_the_one_split_recorded_is_refused_before_anything_is_written(
    image, overlay, model, wheel, tmp_path
):
    # Another compile copied over the plan's .xmodel parses, and the card's --backend vart command would run it
    # with wrong keypoints; split --xmodel records its sha256, which staging checks as `dpupose run` does.
    xmodel = model / "dpu_part.xmodel"
    recorded = xmodel.read_bytes()
    plan = json.loads((model / "plan.json").read_text())
    plan["subgraphs"][0]["xmodel_sha256"] = hashlib.sha256(recorded).hexdigest()
    (model / "plan.json").write_text(json.dumps(plan))
    xmodel.write_bytes(xmodel_bytes("another compile", 150_000))
    before = fingerprint_of(image)
    message = (
        r"dpu_part\.xmodel is not the \.xmodel subgraph 'dpu0' was split with \(sha256 differs.*split the model "
        r"again the same way with --xmodel the \.xmodel to use .*\(the board could not run this plan\)$"
    )
    with pytest.raises(ArtifactError, match=message):
        stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    with pytest.raises(ArtifactError, match=message):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert not (tmp_path / "out.img").exists()
    assert fingerprint_of(image) == before
    xmodel.write_bytes(recorded)
    report = stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    assert "--backend vart" in report.run_command


def test_folders_are_checked_before_the_wheel_is_built(image, overlay, model, tmp_path, monkeypatch):
    def no_build(*_args, **_kw):
        raise AssertionError("the wheel was built before the model folder was checked")

    monkeypatch.setattr(stagemod, "build_wheel", no_build)
    with pytest.raises(UsageError) as info:
        stage(image, overlay, tmp_path / "no-such-model", out=tmp_path / "out.img")
    assert str(info.value) == (
        f"--model {tmp_path / 'no-such-model'} does not exist: give the split plan folder `dpupose split MODEL "
        "--out DIR` wrote"
    )
    assert not (tmp_path / "out.img").exists()


def test_fingerprint_mismatch_writes_nothing(image, overlay, model, wheel, tmp_path):
    (model / "plan.json").write_text(
        json.dumps({**json.loads((model / "plan.json").read_text()), "fingerprint": "0x1000020F6014407"})
    )
    with pytest.raises(FingerprintMismatch, match="0x1000020F6014407"):
        stage(image, overlay, model, out=tmp_path / "out.img", wheel=wheel)
    assert not (tmp_path / "out.img").exists()


@pytest.mark.parametrize("in_place", [False, True])
def test_full_root_partition(image, overlay, model, wheel, tmp_path, in_place):
    before = fingerprint_of(image)
    (model / "weights.bin").write_bytes(os.urandom(30 * 1024 * 1024))  # more than the 24 MiB partition
    out = tmp_path / "out.img"
    with pytest.raises(ImageError, match="too full"):
        stage(image, overlay, model, out=None if in_place else out, in_place=in_place, wheel=wheel)
    assert fingerprint_of(image) == before
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_full_partition_found_by_debugfs_removes_the_copy(image, overlay, model, wheel, tmp_path, monkeypatch):
    # Skip the free-space estimate: debugfs itself runs out of blocks half way.
    monkeypatch.setattr(stagemod, "_check_space", lambda *a: None)
    (model / "weights.bin").write_bytes(os.urandom(30 * 1024 * 1024))
    before = fingerprint_of(image)
    out = tmp_path / "out.img"
    with pytest.raises(ImageError, match=r"root partition is full.*was not written.*unchanged"):
        stage(image, overlay, model, out=out, wheel=wheel)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    assert fingerprint_of(image) == before


def test_a_sparse_image_on_a_full_disk_is_refused_before_it_is_staged(image, overlay, model, wheel, small_fs):
    """Staging fills holes of a sparse image, which takes room on the disk that holds it: on a full disk
    debugfs stopped half way, the error blamed the image's root partition ('the root partition is full',
    which had room), and the image was left partly staged."""
    from conftest import fill

    fs = small_fs(8 * 1024)
    target = fs / "pynq.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(target)], check=True)
    before = fingerprint_of(target)
    fill(fs, leave=100 * 1024)
    with pytest.raises(ImageError, match=rf"the disk holding {fs} has 0\.\d MB free, and staging writes up to "):
        stage(target, overlay, model, in_place=True, wheel=wheel)
    assert fingerprint_of(target) == before
    os.unlink(fs / ".filler")
    stage(target, overlay, model, in_place=True, wheel=wheel)  # with the room: staged
    assert list_staged(target).manifest is not None


def test_a_stage_out_on_dev_shm_is_written(image, overlay, model, wheel):
    """--out on /dev/shm (a tmpfs mounted below /dev): the copy beside it was refused as a card not plugged in."""
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == Path("/dev").stat().st_dev:
        pytest.skip("needs /dev/shm mounted as a file system of its own")
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="dpupose-test-"))
    try:
        out = folder / "staged.img"
        stage(image, overlay, model, out=out, wheel=wheel)
        assert list_staged(out).manifest is not None and os.listdir(folder) == ["staged.img"]
    finally:
        shutil.rmtree(folder)


def test_a_wheel_given_by_a_link_of_another_name_is_staged_under_its_own(image, overlay, model, wheel, tmp_path):
    """--wheel latest.whl, a link to dpupose-VERSION-py3-none-any.whl, was refused as no wheel's name."""
    link = tmp_path / "latest.whl"
    link.symlink_to(wheel)
    out = tmp_path / "out.img"
    stage(image, overlay, model, out=out, wheel=link)
    manifest = list_staged(out).manifest
    assert manifest.wheel == wheel.name and f"/home/xilinx/dpupose/wheels/{wheel.name}" in [
        e.path for e in manifest.entries
    ]


def test_stages_into_one_out_at_once_write_copies_of_their_own(image, overlay, model, wheel, tmp_path, monkeypatch):
    """Two stages into one --out shared .NAME.partial: one renamed or removed the copy the other was still
    writing, which then failed ('debugfs cannot open the root file system ... the image is damaged') or
    put a copy mixed from both in place. Each writes .NAME.PID-XXXXXXXX.partial now; a killed one's goes."""
    from pathlib import Path

    out = tmp_path / "out.img"
    running = tmp_path / ".out.img.1-0123abcd.partial"  # another stage's copy: PID 1 is always running
    running.write_bytes(b"being written")
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = tmp_path / f".out.img.{dead.pid}-89abcdef.partial"  # a killed stage's: that process is gone
    killed.write_bytes(b"left behind")
    copies = []
    real_flash = stagemod.flash

    def flash(image, target, **kwargs):
        copies.append(Path(target).name)
        assert not killed.exists()  # removed before the copy is made: the disk may not hold both
        return real_flash(image, target, **kwargs)

    monkeypatch.setattr(stagemod, "flash", flash)
    stage(image, overlay, model, out=out, wheel=wheel)
    assert len(copies) == 1 and re.fullmatch(rf"\.out\.img\.{os.getpid()}-[0-9a-f]{{8}}\.partial", copies[0])
    assert running.read_bytes() == b"being written"
    assert sorted(p.name for p in tmp_path.iterdir() if "out.img" in p.name) == [running.name, "out.img"]
    assert all(c.status == "ok" for c in list_staged(out).checks)
    stage(image, overlay, model, out=out, wheel=wheel)  # again: a new name each time
    assert len(copies) == 2 and copies[1] != copies[0]


@pytest.mark.parametrize("killed_in", ["copy", "staging"])
def test_a_copy_a_stage_killed_left_is_removed_by_the_next(image, overlay, model, wheel, tmp_path, killed_in):
    """A stage killed (kill -9, the OOM killer) while it copied the image left the copy under the name flash
    gives its temporary (.{copy's name}.XXXXXXXX.partial), which the clean-up did not take: as large as the
    image, it stayed beside --out for good. Killed in either step, its copy goes at the next stage."""
    out = tmp_path / "out.img"
    child = """
import os, signal, sys
from dpupose.board import flash, stage

image, overlay, model, wheel, out, killed_in = sys.argv[1:]

def killed(*args, **kwargs):
    if killed_in == "copy":
        real(*args, **kwargs)  # the whole image is copied into flash's temporary, not yet renamed
    os.kill(os.getpid(), signal.SIGKILL)

if killed_in == "copy":
    real, flash._write_and_verify = flash._write_and_verify, killed
else:
    stage._write = killed
stage.stage(image, overlay, model, out=out, wheel=wheel)
"""
    args = [sys.executable, "-c", child, *map(str, (image, overlay, model, wheel, out)), killed_in]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(left) == 1 and left[0].stat().st_size == image.stat().st_size
    stage(image, overlay, model, out=out, wheel=wheel)
    assert sorted(p.name for p in tmp_path.iterdir() if "out.img" in p.name) == ["out.img"]


def test_the_clean_up_of_killed_stages_copies_leaves_a_user_s_hidden_files(tmp_path, monkeypatch):
    """The clean-up before a stage removed any .NAME.DIGITS.partial beside the image whose DIGITS no running
    process has, so a user's own hidden .out.img.2024.partial went, and a .NAME.partial once unchanged for
    10 minutes (the name earlier versions gave the copy). Only a stage's own name (.NAME.PID-XXXXXXXX.partial,
    8 random hex digits) is taken now, and flash's temporary for it (that name's own .PID-YYYYYYYY.partial, or
    tempfile's 8 characters as an earlier flash named it); the earlier versions' forms cannot be told from a
    user's and stay."""
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    out = tmp_path / "out.img"
    theirs = [
        ".out.img.partial",  # an earlier version's form, untouched for a day
        f".out.img.{dead.pid}.partial",  # an earlier version's form, or a user's: no one can tell
        ".out.img.2024.partial",
        f".out.img.{dead.pid}-0123abc.partial",  # 7 digits
        f".out.img.{dead.pid}-0123abcde.partial",  # 9 digits
        f".out.img.{dead.pid}-0123ABCD.partial",  # not lowercase hex: no name a stage gives
        f".out.img.{dead.pid}-backup_1.partial",
        f".out.img.0{dead.pid}-0123abcd.partial",
        f".out.img.{dead.pid}-0123abcd.partial.bak",
        f".other.img.{dead.pid}-0123abcd.partial",
        f"..out.img.{dead.pid}.partial.k3j4_5m6.partial",  # flash's temporary for an earlier version's copy
        f"..out.img.{dead.pid}-0123abcd.partial.k3j4_5m.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.k3j4-5m6.partial",
        f"...out.img.{dead.pid}-0123abcd.partial.k3j4_5m6.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.{dead.pid}-89abcde.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.1-89abcdef.partial",  # a running flash's (PID 1) into a copy
        f"..out.img.1-0123abcd.partial.{dead.pid}-89abcdef.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.{dead.pid}-89abcdef.partial.partial",
    ]
    for name in theirs:
        (tmp_path / name).write_text("mine")
    os.utime(tmp_path / ".out.img.partial", (0, os.stat(tmp_path / ".out.img.partial").st_mtime - 86400))
    stale = [
        f".out.img.{dead.pid}-0123abcd.partial",
        f".out.img.{os.getpid()}-fedcba98.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.k3j4_5m6.partial",  # flash's temporary: killed while copying
        f"..out.img.{os.getpid()}-fedcba98.partial.00000000.partial",
        f"..out.img.{dead.pid}-0123abcd.partial.{dead.pid}-89abcdef.partial",  # flash's temporary now
        f"..out.img.{os.getpid()}-fedcba98.partial.{os.getpid()}-76543210.partial",
    ]
    for name in stale:
        (tmp_path / name).write_text("a killed stage's")
    writing = tmp_path / f".out.img.{os.getpid()}-00000000.partial"  # this process's, being staged now
    copying = tmp_path / f".{writing.name}.abcdefgh.partial"
    flashing = tmp_path / f".{writing.name}.{os.getpid()}-11111111.partial"  # being flashed into for it
    into = tmp_path / f"..out.img.{os.getpid()}-22222222.partial.{os.getpid()}-33333333.partial"  # a flash's
    for path in (writing, copying, flashing, into):
        path.write_text("being written")
    monkeypatch.setattr(fsio, "_WRITING", {str(writing), str(into)})
    fsio.remove_stale_partials(out)
    assert sorted(os.listdir(tmp_path)) == sorted([*theirs, writing.name, copying.name, flashing.name, into.name])
    assert all((tmp_path / name).read_text() == "mine" for name in theirs)


def test_generated_scripts_are_valid_shell(tmp_path, wheel):
    from dpupose.board.firstboot import firstboot_script
    from dpupose.board.wheel import setup_script

    script = tmp_path / "firstboot.sh"
    script.write_text(firstboot_script(wheel.name))
    subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["bash", "-n", str(setup_script())], check=True)
    text = script.read_text()
    assert f"bash {layout.SETUP_SCRIPT} {layout.WHEEL_DIR}/{wheel.name}" in text
    odd = firstboot_script("dpupose-0.1 $(touch ran);y.whl")  # refused by check_wheel; still one word here
    assert f"if bash {layout.SETUP_SCRIPT} '{layout.WHEEL_DIR}/dpupose-0.1 $(touch ran);y.whl'; then" in odd
    # ... and in the command the log gives without network, which ran the $(...) inside its double quotes.
    hint = next(line for line in odd.splitlines() if "connect the board and run" in line).strip()
    shown = subprocess.run(["bash", "-c", hint], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    command = shown.strip().removeprefix("(or connect the board and run: ").removesuffix(")")
    odd_wheel = f"{layout.WHEEL_DIR}/dpupose-0.1 $(touch ran);y.whl"
    assert shlex.split(command) == ["sudo", "bash", str(layout.SETUP_SCRIPT), odd_wheel]
    assert not (tmp_path / "ran").exists()
    assert f"systemctl disable {layout.FIRSTBOOT_UNIT_NAME}" in text


@pytest.mark.parametrize(("ntp", "clock", "expected"), [(None, 1_600_000_000, 1_700_000_000),
    (1_750_000_000, 1_600_000_000, 1_750_000_000), (None, 1_800_000_000, 1_800_000_000)])  # fmt: skip
def test_first_boot_moves_a_clock_behind_the_staging_time_forward(tmp_path, ntp, clock, expected):
    """The board boots with the image's build time (fake-hwclock), older than pypi.org's certificate;
    the staging time (the script's mtime) is a lower bound, and NTP, when it answers, is better."""
    from dpupose.board.firstboot import firstboot_script

    text = firstboot_script("dpupose.whl")
    function = re.search(r"^sync_clock\(\) \{\n.*?^\}\n", text, re.S | re.M).group(0)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    now = tmp_path / "clock"
    now.write_text(str(clock))
    (stubs / "date").write_text(  # the clock lives in a file: +%s reads it, -s @N sets it
        f"""#!/bin/bash\ncase "$1" in +%s) cat {now};; -s) echo "${{2#@}}" > {now};; *) echo iso;; esac\n"""
    )
    if ntp is not None:
        (stubs / "ntpdate").write_text(f"#!/bin/bash\necho {ntp} > {now}\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    for program in ("stat", "cat"):  # and nothing else of the host's (no ntpdate of its own)
        (stubs / program).symlink_to(shutil.which(program))
    script = tmp_path / "firstboot.sh"
    script.write_text(function + "sync_clock\n")
    os.utime(script, (1_700_000_000, 1_700_000_000))  # staged then
    subprocess.run([shutil.which("bash"), str(script)], check=True, env={"PATH": str(stubs)}, capture_output=True)
    assert int(now.read_text()) == expected


def test_wheel_needs_no_torch_on_the_board(wheel, tmp_path):
    reqs = wheel_requirements(wheel)
    base = {re.split(r"[<>=;\s]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r}
    assert {"numpy", "onnxruntime"} <= base
    assert not base & {"torch", "onnx", "scipy", "matplotlib", "opencv-python-headless"}
    assert any(r.startswith("pynq-dpu==2.5.1") and 'extra == "board"' in r for r in reqs)
    with zipfile.ZipFile(wheel) as zf:
        assert "dpupose/resources/board/board_setup.sh" in zf.namelist()
        licence = next(n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        assert zf.read(licence).startswith(b"\n                                 Apache License\n")
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-Expression: Apache-2.0\n" in meta
    bad = tmp_path / "dpupose-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("dpupose-0.0.1.dist-info/METADATA", "Name: dpupose\nVersion: 0.0.1\nRequires-Dist: torch>=2\n")
    with pytest.raises(ArtifactError, match="requires torch without an extra"):
        check_wheel(bad)
    with zipfile.ZipFile(bad, "w") as zf:
        meta = (
            "Requires-Dist: scipy>=1\n"
            'Requires-Dist: scipy>=1; extra == "host"\n'
            'Requires-Dist: tomli; python_version < "3.11"\n'
        )
        zf.writestr("dpupose-0.0.1.dist-info/METADATA", "Name: dpupose\nVersion: 0.0.1\n" + meta)
    with pytest.raises(ArtifactError, match="requires scipy without an extra"):
        check_wheel(bad)


def wheel_allows(wheel, name: str, version: str, machine: str, extras: tuple[str, ...]) -> bool:
    """Whether `pip install WHEEL[extras]` on Python 3.10 on `machine` accepts `version` of `name`: every
    requirement on it whose marker applies (base, or one of the extras) admits that version."""
    from packaging.requirements import Requirement

    env = {"platform_machine": machine, "python_version": "3.10", "python_full_version": "3.10.12"}
    reqs = [Requirement(r) for r in wheel_requirements(wheel)]
    applies = [
        r for r in reqs if r.marker is None or any(r.marker.evaluate({**env, "extra": e}) for e in ("", *extras))
    ]
    return all(version in r.specifier for r in applies if r.name == name)


def test_the_board_install_keeps_numpy_below_2(wheel):
    """PYNQ 3.0.1's pynq and its OpenCV (Ubuntu 22.04's python3-opencv) are built for the image's numpy
    1.21.5, and the newest onnxruntime for Python 3.10 on aarch64 needs numpy>=1.21.6: unbounded, the
    board's `pip install WHEEL[board]` would upgrade numpy to 2.x and break both. The board extra keeps
    numpy below 2 there; the host's install is left alone."""

    def installable(numpy: str, machine: str, extras: tuple[str, ...]) -> bool:
        return wheel_allows(wheel, "numpy", numpy, machine, extras)

    assert not installable("2.2.6", "aarch64", ("board",))
    assert installable("1.26.4", "aarch64", ("board",))
    assert not installable("1.20.3", "aarch64", ("board",))  # the base requirement still holds
    assert installable("2.2.6", "x86_64", ("host", "dev"))
    assert installable("2.2.6", "aarch64", ())


def test_the_board_install_skips_the_onnxruntime_that_crashes_on_the_a53(wheel):
    """onnxruntime 1.21.x's aarch64 wheels die with SIGILL on import on ARMv8.0 cores such as the
    Ultra96's Cortex-A53 (fixed in 1.22): the board extra excludes them there, and only there."""

    def installable(version: str, machine: str, extras: tuple[str, ...]) -> bool:
        return wheel_allows(wheel, "onnxruntime", version, machine, extras)

    assert not installable("1.21.0", "aarch64", ("board",)) and not installable("1.21.1", "aarch64", ("board",))
    assert installable("1.20.1", "aarch64", ("board",)) and installable("1.23.2", "aarch64", ("board",))
    assert installable("1.21.0", "x86_64", ("host", "dev"))


def test_debugfs_that_cannot_open_the_file_system_is_an_error(image):
    from dpupose.board.extfs import DebugFs
    from dpupose.board.partitions import Partition

    wrong = Partition(2, 0x83, False, offset=ROOT_START + 4096, size=1024 * 1024)
    with pytest.raises(ImageError, match="debugfs cannot open"):
        DebugFs(image, wrong).list_dirs([layout.BOARD_ROOT])


def test_debugfs_write_is_given_a_bare_name_in_its_folder(tmp_path):
    """debugfs before e2fsprogs 1.46.2 (Ubuntu 20.04 has 1.45.5) links `write`'s second argument into
    the current folder as one name: given a path, it makes an entry named '/home/xilinx/...' in /
    (e2fsck: "illegal characters in its name"). Follow the batch's `cd`s as that debugfs does."""
    from pathlib import PurePosixPath

    from dpupose.board.extfs import FileOp, write_commands

    src = tmp_path / "f"
    src.write_text("x")
    paths = [f"{ROOT}/model/cpu/head part.onnx", f"{ROOT}/board_setup.sh", str(layout.FIRSTBOOT_UNIT)]
    files = [FileOp(src, PurePosixPath(p), 0o644, 1000, 1000) for p in paths]
    cwd, written = PurePosixPath("/"), []
    for cmd in write_commands(files, [], {}, {}):
        argv = shlex.split(cmd)  # the ss parser's quoting, as debugfs reads it
        if argv[0] == "cd":
            cwd = cwd / argv[1]
        elif argv[0] == "write":
            assert "/" not in argv[2], cmd
            written.append(str(cwd / argv[2]))
    assert written == paths


@pytest.mark.parametrize(("installed", "isolated"), [("68.1.2", True), ("76.1.0", True), ("77.0.3", False)])
def test_an_installed_setuptools_too_old_for_pyproject_is_not_used(monkeypatch, tmp_path, installed, isolated):
    """pyproject.toml's SPDX license string needs setuptools 77 (its [build-system] requires); an older one
    (Ubuntu 24.04's 68, a Python 3.11 venv's 65) fails to validate it, and pip's --no-build-isolation
    does not check the requirement: the build then goes to pip's isolated environment."""
    import importlib.metadata

    from dpupose.board import wheel as wheelmod

    pyproject = (wheelmod.project_root() / "pyproject.toml").read_text()
    assert f'requires = ["setuptools>={wheelmod.MIN_SETUPTOOLS}", "wheel"]' in pyproject
    monkeypatch.setattr(importlib.metadata, "version", lambda name: installed if name == "setuptools" else "0")
    calls = []

    def run_tool(argv, **kw):
        calls.append(argv)
        raise ToolFailed(argv, 1, "stop here")

    monkeypatch.setattr(wheelmod, "run_tool", run_tool)
    with pytest.raises(ArtifactError, match="building the dpupose wheel failed"):
        wheelmod.build_wheel(tmp_path / "out")
    assert ("--no-build-isolation" not in calls[0]) is isolated


def test_the_wheel_holds_the_source_as_it_is_and_leaves_the_checkout_clean(tmp_path):
    """A module left in a stale build/lib (deleted from the source since) does not ship, and building
    writes nothing into the source tree."""
    from dpupose.board.wheel import build_wheel, project_root

    repo = project_root()
    root = tmp_path / "repo"
    (root / "sw").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(repo / name, root / name)
    shutil.copytree(repo / "sw" / "dpupose", root / "sw" / "dpupose", ignore=shutil.ignore_patterns("__pycache__"))
    stale = root / "build" / "lib" / "dpupose"
    stale.mkdir(parents=True)
    (stale / "removed_module.py").write_text("GONE = True\n")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    wheel = build_wheel(tmp_path / "out", root=root)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "dpupose/board/wheel.py" in names and "dpupose/removed_module.py" not in names
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_a_full_temporary_folder_while_copying_the_source_for_the_wheel_is_one_full_disk_line(tmp_path, monkeypatch):
    """The source is copied into TMPDIR to build the wheel; there copytree went on past the first file that did
    not fit and raised shutil.Error listing every file, each error as text: `sdcard stage` and `deploy` without
    --wheel ended on a line of hundreds of kilobytes (no errno). The first failed copy stops it, as itself."""
    import errno

    from dpupose.board import wheel as wheelmod
    from dpupose.cli import os_error_line

    copied = []
    real = shutil.copy2

    def copy2(src, dst, **kw):
        if len(copied) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
        copied.append(dst)
        return real(src, dst, **kw)

    monkeypatch.setattr(shutil, "copy2", copy2)
    with pytest.raises(OSError) as info:
        wheelmod._clean_copy(wheelmod.project_root(), tmp_path / "src")
    assert (type(info.value), info.value.errno) == (OSError, errno.ENOSPC) and len(copied) == 3
    assert info.value.filename2.startswith(str(tmp_path / "src" / "sw" / "dpupose"))
    assert os_error_line(info.value).startswith(f"No space left on device for {info.value.filename2} (")


def test_an_existing_file_that_is_not_a_staged_image_is_not_replaced(image, overlay, model, wheel, tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("precious")
    with pytest.raises(UsageError, match="exists and is not an image staged by dpupose"):
        stage(image, overlay, model, out=mine, wheel=wheel)
    assert mine.read_text() == "precious"
    bit = overlay / "dpu.bit"  # one of its own inputs
    before = bit.read_bytes()
    with pytest.raises(UsageError, match="not an image staged by dpupose"):
        stage(image, overlay, model, out=bit, wheel=wheel)
    assert bit.read_bytes() == before
    with pytest.raises(UsageError, match="is a folder"):
        stage(image, overlay, model, out=tmp_path, wheel=wheel)
    # A symbolic link that leads nowhere yet is written through, as every output's (architecture.md): the image
    # is made where it leads, in a folder made for it, and the link stays (it was refused, where the other
    # commands wrote through such a link).
    (tmp_path / "dangling.img").symlink_to("new/gone.img")
    stage(image, overlay, model, out=tmp_path / "dangling.img", wheel=wheel)
    assert (tmp_path / "dangling.img").is_symlink() and os.readlink(tmp_path / "dangling.img") == "new/gone.img"
    assert debugfs_cat(tmp_path / "new" / "gone.img", ROOT_START, f'"{ROOT}/model/cpu/head part.onnx"') is not None
    # An image staged before is replaced by the new copy.
    out = tmp_path / "staged.img"
    stage(image, overlay, model, out=out, wheel=wheel)
    (model / "cpu" / "head part.onnx").write_bytes(b"new head")
    stage(image, overlay, model, out=out, wheel=wheel)
    assert debugfs_cat(out, ROOT_START, f'"{ROOT}/model/cpu/head part.onnx"') == b"new head"


def test_a_plan_that_names_a_missing_file_is_refused(image, overlay, model, wheel, tmp_path):
    (model / "cpu" / "head part.onnx").unlink()
    before = fingerprint_of(image)
    with pytest.raises(ArtifactError, match="names cpu/head part.onnx, which is not in the folder"):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert fingerprint_of(image) == before


@pytest.mark.parametrize("damage", ["sha256", "fields"])
def test_a_plan_the_board_could_not_load_is_refused_before_the_image_is_touched(image, overlay, model, wheel, damage):
    # What `dpupose run` refuses on the board is refused here: a subgraph file from another split (its
    # sha256 differs from the plan's) or a plan.json that lost a field.
    plan = json.loads((model / "plan.json").read_text())
    if damage == "sha256":
        plan["subgraphs"][1]["sha256"] = "0" * 64
        said = r"cpu/head part.onnx is not the file subgraph 'cpu0' was split into .*board could not run this plan"
    else:
        del plan["input"]
        said = r"plan lacks field\(s\) input; re-split .*\(the board could not run this plan\)"
    (model / "plan.json").write_text(json.dumps(plan))
    before = fingerprint_of(image)
    with pytest.raises(ArtifactError, match=said):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert fingerprint_of(image) == before


def test_files_in_a_linked_folder_are_staged(image, overlay, model, wheel, tmp_path):
    real = tmp_path / "realcpu"
    shutil.move(model / "cpu", real)
    (model / "cpu").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(real, target_is_directory=True)  # a cycle is walked once
    (model / "cpu2").symlink_to(real, target_is_directory=True)  # a second name for the same folder
    out = tmp_path / "staged.img"
    stage(image, overlay, model, out=out, wheel=wheel)
    want = (real / "head part.onnx").read_bytes()
    assert debugfs_cat(out, ROOT_START, f'"{ROOT}/model/cpu/head part.onnx"') == want
    assert debugfs_cat(out, ROOT_START, f'"{ROOT}/model/cpu2/head part.onnx"') == want


def test_staging_again_counts_the_files_it_replaces_as_free(image, overlay, model, wheel):
    # The second staging's weights (85% of the room) fit only if both the copy they replace (30%) and
    # the first staging's stale file (30%) count as free: 40% + 30% alone is too little, either way.
    from dpupose.board.partitions import find_pynq_partitions as parts_of

    fs = parts_of(image).root_fs
    free = (fs.free_blocks - fs.reserved_blocks) * fs.block_size
    (model / "weights.bin").write_bytes(os.urandom(free * 3 // 10))
    (model / "old.bin").write_bytes(os.urandom(free * 3 // 10))
    stage(image, overlay, model, in_place=True, wheel=wheel)
    (model / "old.bin").unlink()
    (model / "weights.bin").write_bytes(os.urandom(free * 85 // 100))
    stage(image, overlay, model, in_place=True, wheel=wheel)
    assert len(debugfs_cat(image, ROOT_START, f"{ROOT}/model/weights.bin")) == free * 85 // 100
    assert debugfs_cat(image, ROOT_START, f"{ROOT}/model/old.bin") is None
    fsck = subprocess.run([tool("e2fsck"), "-fn", f"{image}?offset={ROOT_START}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout


def test_an_interrupt_while_staging_in_place_says_the_image_may_be_partly_staged(
    image, overlay, model, wheel, monkeypatch, capsys
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C or SIGTERM between two of the files written into the image

    monkeypatch.setattr(stagemod, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stage(image, overlay, model, in_place=True, wheel=wheel)
    assert f"dpupose: warning: {image} may be partly staged: stage it again, or restore it\n" in capsys.readouterr().err


def test_an_interrupt_while_staging_into_a_copy_leaves_no_copy(image, overlay, model, wheel, tmp_path, monkeypatch):
    copies = []

    def interrupted(target, *args, **kwargs):
        assert str(target) in fsio._WRITING  # the clean-up of another thread's stage leaves it
        copies.append(str(target))
        raise KeyboardInterrupt  # Ctrl-C or SIGTERM between two of the files written into the copy

    monkeypatch.setattr(stagemod, "_write", interrupted)
    out = tmp_path / "out.img"
    with pytest.raises(KeyboardInterrupt):
        stage(image, overlay, model, out=out, wheel=wheel)
    assert sorted(p.name for p in tmp_path.iterdir() if "out.img" in p.name) == []
    assert len(copies) == 1 and copies[0] not in fsio._WRITING


def test_a_manifest_a_newer_dpupose_staged_is_said_to_be_newer_not_unreadable():
    from dpupose.board.manifest import build_manifest, parse_manifest

    doc = json.loads(build_manifest([], overlay_fingerprint=None, plan_fingerprint=None, wheel="w.whl").to_json())
    assert parse_manifest(json.dumps(doc), "img").entries == ()
    newer = {**doc, "format": "dpupose-staged/2", "generated_by": "dpupose 9.0.0"}
    said = r"format dpupose-staged/2, written by dpupose 9\.0\.0; this dpupose .* reads dpupose-staged/1"
    with pytest.raises(ArtifactError, match=said):
        parse_manifest(json.dumps(newer), "img")
    with pytest.raises(ArtifactError, match=r"not readable \(format 'other/1'"):
        parse_manifest(json.dumps({**doc, "format": "other/1"}), "img")


def test_verify_of_a_card_written_from_the_staged_copy_points_at_that_copy(
    image, overlay, model, wheel, tmp_path, cli, capsys
):
    # `make sdcard IMAGE=x OVERLAY= MODEL_DIR= DEVICE=` writes the staged copy: checked against x later, the card
    # differs by the staged files, and that is no sign of a failing or fake card.
    staged = tmp_path / "staged.img"
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", str(staged)]) == 0
    capsys.readouterr()
    card = tmp_path / "card.img"
    shutil.copyfile(staged, card)
    assert cli(["sdcard", "verify", str(image), "--device", str(card), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"verification failed: {card} differs from {image.name} from byte ")
    assert "holds an image dpupose staged" in out and "sdcard verify build/sdcard/staged.img" in out
    assert "failing" not in out
    assert cli(["sdcard", "verify", str(staged), "--device", str(card), "--no-progress"]) == 0
    capsys.readouterr()
    with card.open("r+b") as f:  # a byte the card lost: both are staged, so a real difference
        f.seek(ROOT_START + 4096)
        byte = f.read(1)
        f.seek(ROOT_START + 4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert cli(["sdcard", "verify", str(staged), "--device", str(card), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "the card may be failing or fake" in out and "holds an image dpupose staged" not in out
    # A card written from the image as it is (no manifest) that differs: the failing-card message.
    plain = tmp_path / "plain.img"
    shutil.copyfile(image, plain)
    with plain.open("r+b") as f:
        f.seek(FAT_START + 4096)
        byte = f.read(1)
        f.seek(FAT_START + 4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert cli(["sdcard", "verify", str(image), "--device", str(plain), "--no-progress"]) == 1
    assert "the card may be failing or fake" in capsys.readouterr().out


def test_verify_of_a_file_with_itself_is_refused_and_a_staged_copy_is_not_pointed_at_itself(
    image, overlay, model, wheel, tmp_path, cli, capsys, monkeypatch
):
    # `sdcard verify X --device X` compares a file with itself: refused in one line before anything is read,
    # however the same file is named (by device and inode: a symbolic link, a hard link, another spelling).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.img").symlink_to(image)
    os.link(image, tmp_path / "hard.img")
    for device in (str(image), "link.img", "hard.img", f"./{image.name}"):
        assert cli(["sdcard", "verify", str(image), "--device", device, "--no-progress"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.startswith(f"dpupose: error: --device {device} is the image {image} itself (the same file)")
        assert "/dev/sdX" in err
    # The staged copy given as the card: it differs from the image by the staged files, and the command it was
    # told to run compared it with itself. It is now named as the copy itself, with the command for a card.
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", "build/sdcard/staged.img"]) == 0
    capsys.readouterr()
    assert cli(["sdcard", "verify", str(image), "--device", "build/sdcard/staged.img", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"verification failed: build/sdcard/staged.img differs from {image.name} from byte ")
    assert "is the staged copy of pynq.img itself (build/sdcard/staged.img" in out
    assert "dpupose sdcard verify build/sdcard/staged.img --device /dev/sdX" in out
    assert "--device build/sdcard/staged.img" not in out
    # `dpupose sdcard stage` without --out writes build/sdcard/pynq-dpupose.img: the same, by its own name.
    assert cli(args) == 0
    capsys.readouterr()
    os.remove("build/sdcard/staged.img")
    default = tmp_path / "build" / "sdcard" / "pynq-dpupose.img"
    assert default.is_file()
    assert cli(["sdcard", "verify", str(image), "--device", str(default), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "is the staged copy of pynq.img itself (build/sdcard/pynq-dpupose.img" in out
    # A card written from that copy is pointed at the copy that is there, not at make sdcard's absent one.
    card = tmp_path / "card.img"
    shutil.copyfile(default, card)
    assert cli(["sdcard", "verify", str(image), "--device", str(card), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"dpupose sdcard verify build/sdcard/pynq-dpupose.img --device {card}" in out
    assert "the copy `dpupose sdcard stage` made" in out and "itself" not in out
    assert cli(["sdcard", "verify", str(default), "--device", str(card), "--no-progress"]) == 0


def test_verify_of_a_card_without_the_staged_files_against_a_staged_image_says_so(
    image, overlay, model, wheel, tmp_path, cli, capsys
):
    # The staged copy as IMAGE and a card written before staging (or the two given the other way round): it
    # differs by the staged files, and was called a failing or fake card.
    staged = tmp_path / "staged.img"
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", str(staged)]) == 0
    capsys.readouterr()
    card = tmp_path / "card.img"
    shutil.copyfile(image, card)
    assert cli(["sdcard", "verify", str(staged), "--device", str(card), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"verification failed: {card} differs from staged.img from byte ")
    assert "staged.img is an image dpupose staged" in out and f"{card} holds none of the staged files" in out
    assert out.endswith(f"dpupose sdcard verify IMAGE --device {card}\n") and "failing" not in out
    assert cli(["sdcard", "verify", str(image), "--device", str(card), "--no-progress"]) == 0


def test_verify_refuses_a_device_that_is_no_card_or_file_before_opening_it(image, tmp_path):
    # A folder was read back as 'read error at byte 0 of DIR: Is a directory', a missing file as 'cannot read
    # X back for verification: No such file or directory', /dev/null as a card that ends at byte 0 (exit 1),
    # and a FIFO was opened, waiting for a writer for good, past SIGTERM (the open holds signals back).
    import sys

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    what = (
        "give the card the image was written to (/dev/sdX, /dev/mmcblkN; `lsblk` lists them) or the file it was "
        "written to"
    )
    cases = [
        (tmp_path, "is a folder, not a card or an image file"),
        (tmp_path / "card.img", "does not exist"),
        ("/dev/sdzz", "does not exist (is the card reader plugged in?)"),
        (fifo, "is a FIFO, not a card or an image file"),
    ]
    if os.path.exists("/dev/null"):
        cases.append(("/dev/null", "is a character device, not a card or an image file"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for device, said in cases:
        argv = [sys.executable, "-m", "dpupose", "sdcard", "verify", str(image), "--device", str(device)]
        res = subprocess.run([*argv, "--no-progress"], capture_output=True, text=True, timeout=60, env=env)
        assert (res.returncode, res.stdout) == (2, ""), device
        assert res.stderr == f"dpupose: error: --device {device} {said}: {what}\n"


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_the_free_space_check_counts_blocks_inodes_and_the_boot_partition_as_worked_by_hand(image, tmp_path):
    """Two files to stage, of 5000 and 0 bytes, into two new folders (the board folder and its model/):
    2 and 0 blocks of 4 KiB, one more each for its extents, a block per new folder and 16 of slack:
    3 + 1 + 2 + 16 = 22 blocks outside those reserved for root; 2 files + 2 folders + 1 inodes; the boot
    partition takes the manifest (100 bytes) and README (50) plus 64 KiB of room: 65686 bytes."""
    import dataclasses
    from pathlib import PurePosixPath

    from dpupose.board.extfs import DebugFs

    class Fat:
        def __init__(self, free):
            self.free = free

        def free_bytes(self):
            return self.free

    parts = find_pynq_partitions(image)
    assert parts.root_fs.block_size == 4096
    ext = DebugFs(image, parts.root)
    gen = tmp_path / "generated"
    gen.mkdir()
    (gen / "manifest.json").write_bytes(b"m" * 100)
    (gen / "README.txt").write_bytes(b"r" * 50)
    (tmp_path / "big").write_bytes(b"x" * 5000)
    (tmp_path / "empty").write_bytes(b"")
    files = [(tmp_path / "big", layout.BOARD_ROOT / "model" / "big"), (tmp_path / "empty", layout.BOARD_ROOT / "e")]
    # Where a staged file was, a link now: a fast symlink's target is in its inode, so it frees no block.
    stale = [PurePosixPath("/home/xilinx/old.onnx")]
    subprocess.run(
        [tool("debugfs"), "-w", "-R", f"symlink {stale[0]} /etc/hostname", f"{image}?offset={ROOT_START}"],
        check=True,
        capture_output=True,
    )

    def check(blocks=22, inodes=5, boot=65686):
        fs = dataclasses.replace(parts.root_fs, free_blocks=parts.root_fs.reserved_blocks + blocks, free_inodes=inodes)
        stagemod._check_space(image, dataclasses.replace(parts, root_fs=fs), ext, Fat(boot), files, tmp_path, stale)

    check()  # everything just fits
    with pytest.raises(
        ImageError, match=r"the staged files need about 88 KiB but 84 KiB are free \(outside the blocks"
    ):
        check(blocks=21)
    with pytest.raises(ImageError, match="the root partition of the image is too full"):
        check(inodes=4)
    with pytest.raises(ImageError, match="the boot partition of the image is full: 65686 bytes needed"):
        check(boot=65685)


def test_extfs_batches_refuse_what_is_in_the_way_and_give_new_folders_their_owners(tmp_path):
    from pathlib import PurePosixPath

    from dpupose.board.extfs import S_IFDIR, S_IFREG, Entry, FileOp, blocks_needed, user_ids, write_commands

    src = tmp_path / "f"
    src.write_text("x")
    op = FileOp(src, PurePosixPath("/opt/new/f"), 0o644, 5, 6)
    cmds = write_commands([op], [], {}, {PurePosixPath("/opt/new"): (1000, 1001)})
    assert cmds[:6] == [
        "mkdir /opt", "sif /opt uid 0", "sif /opt gid 0",  # no owner given: root's
        "mkdir /opt/new", "sif /opt/new uid 1000", "sif /opt/new gid 1001",
    ]  # fmt: skip
    folder = Entry("x", S_IFDIR | 0o755, 0, 0, 4096)
    with pytest.raises(ImageError, match="^/opt exists on the root partition but is not a directory$"):
        write_commands([op], [], {"/": {"opt": Entry("opt", S_IFREG | 0o644, 0, 0, 10)}}, {})
    in_the_way = {"/": {"opt": folder}, "/opt": {"new": folder}, "/opt/new": {"f": folder}}
    with pytest.raises(ImageError, match="^/opt/new/f exists on the root partition as a directory$"):
        write_commands([op], [], in_the_way, {})
    passwd = b"root:x:0:0:root:/root:/bin/bash\nxilinx:x:1000:1001:xilinx:/home/xilinx:/bin/bash\n"
    assert user_ids(passwd, "xilinx", (7, 8)) == (1000, 1001)
    assert user_ids(passwd, "pynq", (7, 8)) == user_ids(None, "xilinx", (7, 8)) == (7, 8)
    # 0 B: 0 + 1 blocks, 1 B: 1 + 1, 4096 B: 1 + 1, 4097 B: 2 + 1; three folders and 16 of slack.
    assert blocks_needed([0, 1, 4096, 4097], 4096, 3) == 8 + 3 + 16


def test_default_output_drops_the_image_s_suffixes_in_any_case():
    from pathlib import Path

    out = stagemod.DEFAULT_OUT_DIR
    assert stagemod.default_output(Path("dl/PYNQ_U96.IMG.XZ")) == out / "PYNQ_U96-dpupose.img"
    assert stagemod.default_output(Path("pynq.Zip")) == out / "pynq-dpupose.img"


def test_in_place_takes_neither_out_nor_a_compressed_image(image, base_xz, overlay, model, wheel, tmp_path):
    before = fingerprint_of(image)
    with pytest.raises(UsageError, match="give either --in-place or --out, not both"):
        stage(image, overlay, model, out=tmp_path / "out.img", in_place=True, wheel=wheel)
    xz = tmp_path / "pynq.img.xz"
    xz.write_bytes(base_xz)
    with pytest.raises(UsageError, match=r"pynq.img.xz is xz-compressed: stage into a copy with --out NEW.img"):
        stage(xz, overlay, model, in_place=True, wheel=wheel)
    assert fingerprint_of(image) == before and xz.read_bytes() == base_xz and not (tmp_path / "out.img").exists()


def test_a_write_that_fails_part_way_in_place_says_the_image_is_partly_staged(
    image, overlay, model, wheel, monkeypatch
):
    monkeypatch.setattr(stagemod, "_check_space", lambda *a: None)  # debugfs runs out of blocks half way
    (model / "weights.bin").write_bytes(os.urandom(30 * 1024 * 1024))
    said = rf"^the root partition is full: .*; {re.escape(str(image))} is now partly staged: stage it again, or restore"
    with pytest.raises(ImageError, match=said):
        stage(image, overlay, model, in_place=True, wheel=wheel)


def test_an_out_linked_to_a_staged_image_replaces_that_image_and_keeps_the_link(image, overlay, model, wheel, tmp_path):
    real = tmp_path / "images" / "staged.img"
    real.parent.mkdir()
    stage(image, overlay, model, out=real, wheel=wheel)
    link = tmp_path / "latest.img"
    link.symlink_to(real)
    (model / "dpu0.onnx").write_bytes(b"a new subgraph")
    stage(image, overlay, model, out=link, wheel=wheel)
    assert link.is_symlink() and link.resolve() == real
    assert debugfs_cat(real, ROOT_START, f"{ROOT}/model/dpu0.onnx") == b"a new subgraph"
    assert sorted(p.name for p in real.parent.iterdir()) == ["staged.img"]


def test_an_out_in_a_folder_given_by_a_link_that_leads_nowhere_yet_is_made_where_it_leads(
    image, overlay, model, wheel, tmp_path
):
    """--out FOLDER/x.img with FOLDER a link to a folder not made yet: the folder is made where the link leads
    and the link stays, as every command's output folder (mkdir refused the link with 'File exists')."""
    (tmp_path / "images").symlink_to(os.path.join("made", "images"))
    stage(image, overlay, model, out=tmp_path / "images" / "staged.img", wheel=wheel)
    assert os.readlink(tmp_path / "images") == os.path.join("made", "images")
    assert os.listdir(tmp_path / "made" / "images") == ["staged.img"]
    assert debugfs_cat(tmp_path / "made" / "images" / "staged.img", ROOT_START, f"{ROOT}/model/dpu0.onnx") is not None


def test_a_folder_made_outside_the_board_folder_belongs_to_root(image, overlay, model, wheel):
    # An image without multi-user.target.wants: the folder made for the unit's link is systemd's, not xilinx's.
    wants = layout.FIRSTBOOT_WANTS.parent
    subprocess.run(
        [tool("debugfs"), "-w", "-R", f"rmdir {wants}", f"{image}?offset={ROOT_START}"], check=True, capture_output=True
    )
    assert wants.name not in ls_p(image, wants.parent)
    stage(image, overlay, model, in_place=True, wheel=wheel)
    mode, uid, gid = ls_p(image, wants.parent)[wants.name]
    assert (mode & 0o170000, uid, gid) == (0o040000, 0, 0)
    assert ls_p(image, layout.BOARD_ROOT.parent)["dpupose"][1:] == (1000, 1000)


def test_a_boot_copy_or_link_that_did_not_land_fails_the_read_back(image, overlay, model, wheel, tmp_path, monkeypatch):
    from dpupose.board.extfs import DebugFs
    from dpupose.board.fatfs import FatFs

    other = tmp_path / "other.json"
    other.write_text("{}\n")
    real_put, real_apply = FatFs.put, DebugFs.apply

    def put(self, source, path):  # the boot partition kept another manifest
        real_put(self, other if path == stagemod.BOOT_MANIFEST else source, path)

    monkeypatch.setattr(FatFs, "put", put)
    with pytest.raises(
        ImageError, match=r"did not read back correctly: boot partition /dpupose/manifest.json differs \("
    ):
        stage(image, overlay, model, out=tmp_path / "a.img", wheel=wheel)
    monkeypatch.setattr(FatFs, "put", real_put)

    def apply(self, commands):  # the unit's link was not made
        real_apply(self, [c for c in commands if not c.startswith("symlink ")])

    monkeypatch.setattr(DebugFs, "apply", apply)
    with pytest.raises(ImageError, match=rf"did not read back correctly: {layout.FIRSTBOOT_WANTS} is not a link \("):
        stage(image, overlay, model, out=tmp_path / "b.img", wheel=wheel)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".img") == ["pynq.img"]


def test_ls_says_when_the_boot_copy_differs_and_when_the_unit_is_not_linked(
    image, overlay, model, wheel, tmp_path, cli, capsys
):
    stage(image, overlay, model, in_place=True, wheel=wheel)
    other = tmp_path / "other.json"
    other.write_text("{}\n")
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    mcopy = [tool("mcopy"), "-o", "-i", f"{image}@@{FAT_START}", str(other), "::/dpupose/manifest.json"]
    subprocess.run(mcopy, env=env, check=True, capture_output=True)
    assert cli(["sdcard", "ls", str(image)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        "  first-boot setup enabled",
        f"{image}: the boot partition's manifest copy differs: stage it again",
    ]
    # The unit's link replaced by a plain file: systemd does not start the setup from it.
    link = layout.FIRSTBOOT_WANTS
    commands = tmp_path / "cmds"
    commands.write_text(f"rm {link}\ncd {link.parent}\nwrite {other} {link.name}\n")
    subprocess.run(
        [tool("debugfs"), "-w", "-f", str(commands), f"{image}?offset={ROOT_START}"], check=True, capture_output=True
    )
    assert ls_p(image, link.parent)[link.name][0] & 0o170000 == 0o100000
    cli(["sdcard", "ls", str(image)])
    assert "  first-boot setup NOT enabled" in capsys.readouterr().out.splitlines()


def test_a_debugfs_that_could_not_open_the_image_but_exited_0_is_an_error(monkeypatch, image):
    # Older debugfs exits 0 after "... while trying to open ...", and then reads no directory at all.
    import subprocess as sp

    from dpupose.board import extfs
    from dpupose.board.partitions import find_pynq_partitions as parts_of

    said = "debugfs 1.45.5 (07-Jan-2020)\ndebugfs: Bad magic number in super-block while trying to open x.img\n"
    monkeypatch.setattr(extfs, "run_tool", lambda argv, **kw: sp.CompletedProcess(argv, 0, "", said))
    fs = extfs.DebugFs(image, parts_of(image).root)
    with pytest.raises(ImageError, match="debugfs cannot open the root file system .debugfs: Bad magic number"):
        fs.list_dirs([layout.BOARD_ROOT])


def test_a_full_temporary_folder_while_reading_back_is_a_full_disk_not_changed_files(monkeypatch, image, tmp_path):
    """debugfs copies the staged files out into a temporary folder to check them, and on a full TMPDIR says
    'dump: No space left on device while writing file' and exits 0, leaving them empty: stage failed with
    'staged files did not read back correctly: ... changed' for every file and `sdcard ls` said they had
    changed (exit 1). The read-back now stops on the full disk, naming where it copied them."""
    import errno
    import subprocess as sp

    from dpupose.board import extfs
    from dpupose.board.partitions import find_pynq_partitions as parts_of

    fs = extfs.DebugFs(image, parts_of(image).root)
    for command, said, reading in (
        ("rdump", "No space left on device", lambda: fs.dump_tree(layout.BOARD_ROOT, tmp_path / "root")),
        ("dump", "Disk quota exceeded", lambda: fs.read(layout.MANIFEST)),
    ):
        stderr = f"debugfs 1.47.0 (5-Feb-2023)\n{command}: {said} while writing file\n"
        monkeypatch.setattr(
            extfs, "run_tool", lambda argv, stderr=stderr, **kw: sp.CompletedProcess(argv, 0, "", stderr)
        )
        with pytest.raises(OSError) as info:
            reading()
        assert (info.value.errno, info.value.strerror) == ({"rdump": errno.ENOSPC, "dump": errno.EDQUOT}[command], said)
        assert command == "dump" or info.value.filename == str(tmp_path / "root")
    said = "debugfs 1.47.0 (5-Feb-2023)\nrdump: Permission denied while writing file\n"
    monkeypatch.setattr(extfs, "run_tool", lambda argv, **kw: sp.CompletedProcess(argv, 0, "", said))
    with pytest.raises(ImageError, match=r"could not copy /home/xilinx/dpupose out of the image into .*: rdump: Perm"):
        fs.dump_tree(layout.BOARD_ROOT, tmp_path / "root")


def test_a_folder_or_file_that_cannot_be_made_in_a_full_temporary_folder_is_a_full_disk(monkeypatch, image, tmp_path):
    """A TMPDIR with no room for a folder (or no inode left) fails debugfs before any write: 'rdump: No space
    left on device while making directory ...' or '... while opening ...' (its lines, as debugfs 1.47.0 printed
    them into a tmpfs out of inodes), exit 0, and the read-back then called the files not made missing. So does
    a link rdump cannot make ('... while creating symlink TARGET -> PATH', as 1.47.0 printed it into a tmpfs of
    3 inodes) and a close that reports the failed write (a quota, a network file system: debugfs/dump.c's
    wording). Those are a full disk too; a copy whose ownership a user other than root cannot set is no failed
    copy."""
    import errno
    import subprocess as sp

    from dpupose.board import extfs
    from dpupose.board.partitions import find_pynq_partitions as parts_of

    fs = extfs.DebugFs(image, parts_of(image).root)
    dest = tmp_path / "root"
    for said, reading in (
        (f"rdump: No space left on device while making directory {dest}/dpupose/overlay", "tree"),
        (f"rdump: No space left on device while opening {dest}/dpupose/manifest.json", "tree"),
        (f"dump: Disk quota exceeded while opening {tmp_path}/out for dump_inode", "file"),
        (f"rdump: No space left on device while creating symlink ../overlay/dpu.bit -> {dest}/dpupose/dpu.bit", "tree"),
        (f"rdump: Disk quota exceeded while closing {dest}/dpupose/manifest.json", "tree"),
        (f"dump: No space left on device while closing {tmp_path}/out for dump_inode", "file"),
    ):
        stderr = f"debugfs 1.47.0 (5-Feb-2023)\n{said}\n"
        monkeypatch.setattr(
            extfs, "run_tool", lambda argv, stderr=stderr, **kw: sp.CompletedProcess(argv, 0, "", stderr)
        )
        with pytest.raises(OSError) as info:
            fs.dump_tree(layout.BOARD_ROOT, dest) if reading == "tree" else fs.read(layout.MANIFEST)
        code = errno.EDQUOT if "quota" in said else errno.ENOSPC
        assert (info.value.errno, info.value.strerror) == (code, os.strerror(code))
    said = f"debugfs 1.47.0 (5-Feb-2023)\nrdump: Operation not permitted while changing ownership of {dest}/x\n"
    monkeypatch.setattr(extfs, "run_tool", lambda argv, **kw: sp.CompletedProcess(argv, 0, "", said))
    assert fs.dump_tree(layout.BOARD_ROOT, dest) is None  # nothing made here; no error raised


def test_a_stale_file_already_gone_from_the_image_is_not_removed_again(image, overlay, model, wheel):
    # A file an earlier staging put there (in its manifest) and someone removed since: `rm` of it failed.
    (model / "old.bin").write_bytes(b"old")
    stage(image, overlay, model, in_place=True, wheel=wheel)
    subprocess.run(
        [tool("debugfs"), "-w", "-R", f"rm {ROOT}/model/old.bin", f"{image}?offset={ROOT_START}"],
        check=True,
        capture_output=True,
    )
    (model / "old.bin").unlink()
    stage(image, overlay, model, in_place=True, wheel=wheel)
    assert {c.status for c in list_staged(image).checks} == {"ok"}
    assert "old.bin" not in ls_p(image, f"{ROOT}/model")


def test_an_image_without_holes_on_a_full_disk_is_staged(image, overlay, model, wheel, small_fs):
    # Every block of it is on the disk already: staging writes over them and needs no room there.
    from conftest import fill

    fs = small_fs(70 * 1024)
    target = fs / "pynq.img"
    subprocess.run(["cp", "--sparse=never", str(image), str(target)], check=True)
    fill(fs, leave=100 * 1024)
    stage(target, overlay, model, in_place=True, wheel=wheel)
    assert {c.status for c in list_staged(target).checks} == {"ok"}


def test_out_naming_the_image_itself_says_what_to_give(image, base_xz, overlay, model, tmp_path):
    with pytest.raises(UsageError, match=r"is the image itself: use --in-place to stage into it$"):
        stage(image, overlay, model, out=image)
    xz = tmp_path / "pynq.img.xz"
    xz.write_bytes(base_xz)
    with pytest.raises(UsageError, match=r"is the image itself: give a new file name for the staged copy$"):
        stage(xz, overlay, model, out=xz)


def test_verify_takes_a_block_device_as_the_card(monkeypatch):
    # A card is a block device (/dev/sdX, /dev/mmcblkN): the check that refuses a folder, a FIFO or a character
    # device before anything is opened lets it through. A block device node is made here by its stat (a test cannot
    # plug in a card); one of this machine's own, where there is one it can see, is taken too.
    import stat
    from pathlib import Path

    from dpupose.commands.sdcard import _check_readable_target

    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path) == "/dev/sdq":
            return os.stat_result((stat.S_IFBLK | 0o660, 0, 5, 1, 0, 6, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: str(path) == "/dev/sdq")  # readable by this user
    assert _check_readable_target(Path("/dev/sdq"), "/dev/sdq") is None
    monkeypatch.undo()
    blocks = [p for p in sorted(Path("/dev").glob("loop*")) if stat.S_ISBLK(os.stat(p).st_mode)][:1]
    for device in blocks:
        if os.access(device, os.R_OK):  # root's, or the disk group's
            assert _check_readable_target(device, str(device)) is None
        else:  # an ordinary user's: the next test
            with pytest.raises(DeviceError, match=f"^no permission to read --device {device}: reading a card"):
                _check_readable_target(device, str(device))


def test_verify_of_a_card_this_user_may_not_read_gives_the_command_for_root(monkeypatch, tmp_path, cli, capsys):
    """An ordinary user's `sdcard verify IMG --device /dev/sdb` read "cannot read /dev/sdb back for
    verification: Permission denied" (nothing was written back), and `sudo dpupose ...` is "command not found"
    where dpupose is in a virtual environment (sudo's secure_path): the command to run is given, with sudo and
    dpupose's full path."""
    import stat

    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if str(path) == "/dev/sdq":
            return os.stat_result((stat.S_IFBLK | 0o660, 0, 5, 1, 0, 6, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)

    image = tmp_path / "pynq.img"
    image.write_bytes(OLD_CARD)
    program = tmp_path / "venv" / "bin" / "dpupose"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    argv = ["sdcard", "verify", str(image), "--device", "/dev/sdq"]
    monkeypatch.setattr(sys, "argv", [str(program), *argv])
    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: str(path) != "/dev/sdq")  # root's and disk's only
    assert cli(argv) == 2
    assert capsys.readouterr().err == (
        "dpupose: error: no permission to read --device /dev/sdq: reading a card needs root; run the command with "
        "sudo and dpupose's full path (sudo does not keep a virtual environment on PATH): "
        f"sudo {program} sdcard verify {image} --device /dev/sdq\n"
    )


def test_a_user_without_the_system_folders_on_path_stages_and_lists(
    image, overlay, model, wheel, tmp_path, cli, capsys, monkeypatch
):
    """Debian installs debugfs in /usr/sbin, which only root's PATH holds by default: an ordinary user's
    `dpupose sdcard stage` of an image file (no root needed) was told "'debugfs' is not installed or not on
    PATH: install it (sudo apt-get install e2fsprogs)", installed as it was. The system folders are looked
    in after PATH. Here PATH holds mtools and no debugfs, and the one debugfs is in a system folder."""
    from dpupose.board import tools

    bin_dir, sbin = tmp_path / "bin", tmp_path / "sbin"
    bin_dir.mkdir()
    sbin.mkdir()
    for name in ("mdir", "mmd", "mcopy", "mtype"):
        (bin_dir / name).symlink_to(shutil.which(name))
    (sbin / "debugfs").symlink_to(tool("debugfs"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(tools, "SYSTEM_DIRS", ("/nonexistent", str(sbin)), raising=False)
    out = tmp_path / "staged.img"
    assert "matches" in stage(image, overlay, model, out=out, wheel=wheel).verdict
    assert cli(["sdcard", "ls", str(out)]) == 0
    assert "all SHA-256 sums match" in capsys.readouterr().out
    monkeypatch.setattr(tools, "SYSTEM_DIRS", ("/nonexistent",), raising=False)
    with pytest.raises(ToolNotFoundError, match=r"^'debugfs' is not installed .*apt-get install e2fsprogs"):
        stage(image, overlay, model, out=tmp_path / "again.img", wheel=wheel)


def test_the_flash_hint_after_staging_is_a_command_an_ordinary_user_can_run(
    image, overlay, model, wheel, tmp_path, monkeypatch, cli, capsys
):
    """`sdcard stage` ended with 'write it to a card: dpupose sdcard flash IMG --device /dev/sdX', which an
    ordinary user could not run (no permission on the card; `sudo dpupose` finds no dpupose in a virtual
    environment). For them the hint is the command as root with dpupose's full path; for root the plain one."""
    import sys

    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "dpupose").write_text("#!/bin/sh\n")
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    for uid, who in ((1000, ["sudo", str(venv_bin / "dpupose")]), (0, ["dpupose"])):
        out = tmp_path / f"card of {uid}.img"
        monkeypatch.setattr(sys, "argv", [str(venv_bin / "dpupose"), *args, "--out", str(out)])
        monkeypatch.setattr(os, "geteuid", lambda uid=uid: uid)
        expected = [*who, "sdcard", "flash", str(out), "--device", "/dev/sdX"]
        assert cli([*args, "--out", str(out)]) == 0
        hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("write it to a card: "))
        assert shlex.split(hint.removeprefix("write it to a card: ")) == expected


def test_a_fifo_a_device_or_a_dangling_link_given_as_a_payload_is_named_for_what_it_is(tmp_path):
    """--overlay, --model and --wheel (sdcard stage and deploy) said 'does not exist' of a FIFO, /dev/null or a
    link to nothing, which the user sees there."""
    from dpupose.board.artifacts import check_model, check_overlay

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "gone").symlink_to("nothing/here")
    link = "is a symbolic link that leads nowhere (to nothing/here)"
    for path, what in (
        (tmp_path / "pipe", "is a FIFO"),
        (Path("/dev/null"), "is a device"),
        (tmp_path / "gone", link),
        (tmp_path / "absent", "does not exist"),
    ):
        with pytest.raises(UsageError) as info:
            check_overlay(path)
        assert (
            str(info.value)
            == f"--overlay {path} {what}: give the folder `make hw DPU=<config>` writes (build/hw/<config>)"
        )
        with pytest.raises(UsageError) as info:
            check_model(path)
        assert (
            str(info.value)
            == f"--model {path} {what}: give the split plan folder `dpupose split MODEL --out DIR` wrote"
        )
        with pytest.raises(ArtifactError) as info:
            check_wheel(path)
        assert str(info.value) == f"wheel {path} {what} (leave --wheel out to build one from this checkout)"
