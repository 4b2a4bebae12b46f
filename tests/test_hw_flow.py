"""`dpupose hw build` end to end with recording fakes of vivado and v++: outputs, resume, failures, bad input."""

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import tempfile
from datetime import datetime

import pytest
from doc_keys import table_keys
from hwfakes import install_fake_tools, make_board_repo, make_trd_archive, step_of, tool_calls

from dpupose import cli
from dpupose.dpu.config import load_config
from dpupose.dpu.fingerprint import fingerprint_hex
from dpupose.hwbuild.inputs import TRD_SKELETON
from dpupose.hwbuild.layout import tcl_dir

CONFIG = "u96v2-b1600-pynq"
DELIVERABLES = ("dpu.bit", "dpu.hwh", "dpu.xclbin", "arch.json")


@pytest.fixture(autouse=True)
def only_hw_command(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("hw",))


@pytest.fixture
def env(tmp_path, monkeypatch):
    log = install_fake_tools(tmp_path / "bin", monkeypatch)
    trd = make_trd_archive(tmp_path / "downloads" / "DPUCZDX8G.tar.gz", TRD_SKELETON)
    repo = make_board_repo(tmp_path / "bdf")
    out = tmp_path / "build" / CONFIG
    return {"log": log, "trd": trd, "repo": repo, "out": out, "tmp": tmp_path}


def build(capsys, env, *extra, config=CONFIG):
    argv = ["hw", "build", "--config", config, "--trd", str(env["trd"]), "--board-repo", str(env["repo"])]
    rc = cli.main([*argv, "--out", str(env["out"]), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def steps_run(env):
    return [step_of(c) for c in tool_calls(env["log"])]


def test_full_build_publishes_the_four_files_and_build_info(capsys, env):
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link"]
    for name in DELIVERABLES:
        assert (env["out"] / name).is_file(), name
    assert (env["out"] / "dpu.xclbin").read_bytes().startswith(b"xclbin2\0")
    cfg = load_config(CONFIG)
    arch = json.loads((env["out"] / "arch.json").read_text())
    assert arch["fingerprint"] == fingerprint_hex(cfg) == "0x101000016010404"
    info = json.loads((env["out"] / "build_info.json").read_text())
    assert list(info) == table_keys("hardware.md", "plus `build_info.json`:")  # the documented keys, in order
    assert info["fingerprint"] == "0x101000016010404" and info["config"] == CONFIG
    assert info["clock_override"] is False and list(info["clocks_mhz"]) == ["dpu_1x", "dpu_2x"]
    assert sorted(info["resources"]) == ["bram36", "dsp", "ff", "lut", "uram"]
    assert info["tools"] == {"v++": "v++ v2022.1 (64-bit)", "vivado": "Vivado v2022.1 (64-bit)"}
    assert info["timing"]["met"] and info["timing"]["wns_ns"] == pytest.approx(0.021)
    assert info["resources"]["dsp"]["used"] == 326 and info["resources"]["dsp"]["available"] == 360
    assert info["resources"]["dsp"]["estimated"] == 326  # B1600 DSP high: the model's exact DSP count
    assert info["trd"]["ip_version"] == "4.0.0" and info["board_files"]["version"] == "1.2"
    # The generated inputs went where the commands say.
    gen = env["out"] / "gen"
    assert sorted(p.name for p in gen.iterdir()) == sorted(
        ["params.tcl", "platform.xdc", "dpu_conf.vh", "prj_config", "arch.json"]
    )
    platform_call = tool_calls(env["log"])[0]
    assert platform_call[platform_call.index("-tclargs") + 1 :] == [
        str(gen / "params.tcl"),
        str(env["repo"].resolve()),
        str(env["out"] / "platform" / "platform.xsa"),
    ]


def test_second_build_runs_no_tool(capsys, env):
    assert build(capsys, env)[0] == 0
    before = len(tool_calls(env["log"]))
    rc, out, _ = build(capsys, env)
    assert rc == 0 and len(tool_calls(env["log"])) == before
    assert "platform  up to date" in out and "link      up to date" in out
    assert (env["out"] / "dpu.bit").is_file()


def test_a_failed_link_s_log_kept_under_another_name_outlives_the_rerun(capsys, env, monkeypatch):
    """A failed link's log kept by a hard link (`ln logs/link.log failed-link.log`, a `cp -al` snapshot of the
    build folder) before the link is run again: the rerun opened logs/link.log for writing, emptying the kept
    log too. The rerun's log is a new file; a log that is a symbolic link stays one, its file replaced."""
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env)[0] == 2
    logs = env["out"] / "logs"
    kept = env["tmp"] / "failed-link.log"
    os.link(logs / "link.log", kept)
    failed = kept.read_text()
    assert "fake link failure" in failed
    monkeypatch.delenv("FAKE_FAIL")
    assert build(capsys, env)[0] == 0
    assert kept.read_text() == failed
    assert "fake link failure" not in (logs / "link.log").read_text()
    elsewhere = env["tmp"] / "kernel.log"
    os.replace(logs / "kernel.log", elsewhere)
    (logs / "kernel.log").symlink_to(elsewhere)
    other = env["tmp"] / "kernel-kept.log"
    os.link(elsewhere, other)
    other_text = other.read_text()
    assert build(capsys, env, "--from", "kernel", "--to", "kernel", "--force")[0] == 0
    assert (logs / "kernel.log").is_symlink() and other.read_text() == other_text
    assert elsewhere.read_text().startswith("# ") and not os.path.samefile(elsewhere, other)


@pytest.mark.parametrize(
    ("option", "where"),
    [("trd", "trd/DPUCZDX8G-new.tar.gz"), ("trd", "kernel/trd"), ("repo", "platform/bdf"), ("trd", "kernel")],
)
def test_an_input_inside_a_folder_the_build_removes_is_refused_and_kept(capsys, env, option, where):
    """A TRD archive put in the build's trd/ (a newer release), a TRD folder or the board repository copied into
    a step folder: the build removed it with the folder (the archive's unpacking replaces trd/ whole, each tool
    step empties its own folder), then failed for want of it. Refused before any step, the input kept."""
    assert build(capsys, env)[0] == 0
    calls = len(tool_calls(env["log"]))
    given = env["out"] / where
    if option == "repo":
        make_board_repo(given)
    elif where.endswith(".tar.gz"):
        make_trd_archive(given, [*TRD_SKELETON, "dpu_ip/extra.v"])
    else:
        make_trd_archive(env["tmp"] / "t.tar.gz", TRD_SKELETON, top="")
        shutil.unpack_archive(env["tmp"] / "t.tar.gz", given)
    before = sorted(p.relative_to(given).as_posix() for p in [given, *given.rglob("*")])
    env[option] = given
    rc, _, err = build(capsys, env, "--force")
    folder = env["out"] / where.split("/")[0]
    label = "--trd (DPU_TRD)" if option == "trd" else "--board-repo (BOARD_REPO)"
    assert rc == 2 and f"{label} {given} is in {folder}, which the build removes whole" in err
    assert sorted(p.relative_to(given).as_posix() for p in [given, *given.rglob("*")]) == before
    assert len(tool_calls(env["log"])) == calls


@pytest.mark.parametrize("via", ["the input", "--out", "a bind mount"])
def test_an_input_inside_a_step_folder_reached_through_a_link_is_refused(capsys, env, via, bind_mount):
    """The TRD folder copied into kernel/ and given by a link to it elsewhere, or through a bind mount of kernel/
    elsewhere (a name no real path ties to kernel/), or the build folder given by a link to it: the input is
    inside kernel/ all the same, which the kernel step empties. Compared by real path, and by folder inode."""
    assert build(capsys, env)[0] == 0
    calls = len(tool_calls(env["log"]))
    inside = env["out"] / "kernel" / "trd"
    make_trd_archive(env["tmp"] / "t.tar.gz", TRD_SKELETON, top="")
    shutil.unpack_archive(env["tmp"] / "t.tar.gz", inside)
    before = sorted(p.relative_to(inside).as_posix() for p in inside.rglob("*"))
    if via == "the input":
        env["trd"] = env["tmp"] / "trd-link"
        env["trd"].symlink_to(inside)
    elif via == "a bind mount":
        env["trd"] = bind_mount(inside.parent) / "trd"
    else:
        env["trd"] = inside
        env["out"] = env["tmp"] / "out-link"
        env["out"].symlink_to(inside.parents[1])
    rc, _, err = build(capsys, env, "--force")
    assert rc == 2 and f"--trd (DPU_TRD) {env['trd']} is in {inside.parent}, which the build removes" in err
    assert sorted(p.relative_to(inside).as_posix() for p in inside.rglob("*")) == before
    assert len(tool_calls(env["log"])) == calls


def test_a_trd_folder_in_trd_or_a_link_there_is_used_as_it_is(capsys, env):
    """trd/ is emptied only where a TRD archive is unpacked into it: a TRD folder kept there (the one the
    archive gave, say) is read as it is and stays, and so is a trd/ that is a link to the TRD unpacked before
    (moved elsewhere), which a build leaves to the unpacking, where each tool step's folder may not be a link."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    trd = out / "trd"
    listing = sorted(p.relative_to(trd).as_posix() for p in trd.rglob("*"))
    assert any(n.startswith("dpu_ip/") for n in listing)
    rc, _, err = build(capsys, {**env, "trd": trd}, "--force")
    assert rc == 0, err
    assert sorted(p.relative_to(trd).as_posix() for p in trd.rglob("*")) == listing
    elsewhere = env["tmp"] / "unpacked"
    shutil.move(trd, elsewhere)
    trd.symlink_to(elsewhere)
    rc, _, err = build(capsys, env, "--force")
    assert rc == 0, err
    assert trd.is_symlink() and sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*")) == listing


def test_another_trd_archive_replaces_a_trd_link_and_keeps_the_folder_it_points_to(capsys, env):
    """trd/ moved to another disk and linked back, then a newer TRD archive given: the unpacking removed trd/
    with shutil.rmtree, which refuses a link ('Cannot call rmtree on a symbolic link'), so the build failed once
    the published set was taken down. The new TRD is unpacked in place of the link; the folder it points to
    is not the build's to empty, and stays as it was."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    trd, elsewhere = out / "trd", env["tmp"] / "unpacked"
    shutil.move(trd, elsewhere)
    trd.symlink_to(elsewhere)
    listing = sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*"))
    env["trd"] = make_trd_archive(env["tmp"] / "downloads" / "DPUCZDX8G-new.tar.gz", [*TRD_SKELETON, "dpu_ip/extra.v"])
    rc, _, err = build(capsys, env, "--force")
    assert rc == 0, err
    assert not trd.is_symlink() and (trd / "dpu_ip" / "extra.v").read_text() == "// dpu_ip/extra.v\n"
    assert sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*")) == listing
    assert all((out / n).is_file() for n in DELIVERABLES)


def test_a_file_at_trd_is_refused_before_any_step_where_an_archive_is_unpacked_there(capsys, env):
    """A file at a build's trd/ (the name taken by the user's notes) with a TRD archive given: the unpacking
    stopped on it ('Not a directory') once the published set was taken down. Refused before anything runs, the
    file and the published set as they were; with a TRD folder, trd/ is not used and the build runs."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    shutil.rmtree(out / "trd")
    (out / "trd").write_text("mine")
    calls = len(tool_calls(env["log"]))
    published = {n: (out / n).read_bytes() for n in DELIVERABLES}
    rc, _, err = build(capsys, env, "--force")
    assert rc == 2 and f"{out / 'trd'} is a file, and the TRD archive {env['trd']} is unpacked in" in err
    assert "nothing is published now" not in err
    assert len(tool_calls(env["log"])) == calls and {n: (out / n).read_bytes() for n in DELIVERABLES} == published
    assert (out / "trd").read_text() == "mine"
    folder = env["tmp"] / "trd-folder"
    make_trd_archive(env["tmp"] / "t.tar.gz", TRD_SKELETON, top="")
    shutil.unpack_archive(env["tmp"] / "t.tar.gz", folder)
    rc, _, err = build(capsys, {**env, "trd": folder}, "--force")
    assert rc == 0, err
    assert (out / "trd").read_text() == "mine"


@pytest.mark.parametrize("name", ["gen/params.tcl", "stamps/link.json"])
def test_a_fifo_at_a_file_a_build_reads_is_not_waited_on(capsys, env, name, hang_guard):
    """A build read gen/params.tcl (is the folder a build's?) and each step's stamp whole: a FIFO at either name
    waited for a writer for ever. Neither is read: a FIFO at gen/params.tcl is no build's, and one at a stamp no
    stamp (its step runs again)."""
    assert build(capsys, env)[0] == 0
    fifo = env["out"] / name
    fifo.unlink()
    os.mkfifo(fifo)
    with hang_guard(60, f"the build waited on the FIFO at {name}"):
        rc, _, err = build(capsys, env)
    if name == "gen/params.tcl":  # no build's own: its files are named, to move, the FIFO kept
        assert rc == 2 and fifo.is_fifo()
        assert "is not a dpupose hardware build folder (it has no gen/params.tcl from an earlier build)" in err
    else:  # the step is stale without its stamp, and runs again: the build's own stamps/ holds its stamp again
        assert rc == 0 and json.loads(fifo.read_text())["step"] == "link"


def test_a_step_folder_that_is_a_file_is_refused_before_any_step_and_kept(capsys, env):
    """A file at link/ (the folder's name taken by the user's notes): the rebuild ran the platform and kernel,
    then failed at the link. Refused before anything runs, the file as it was."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    shutil.rmtree(out / "link")
    (out / "link").write_text("mine")
    calls = len(tool_calls(env["log"]))
    rc, _, err = build(capsys, env, "--force")
    assert rc == 2 and f"{out / 'link'} is a file, and a build removes link/ whole" in err
    assert err.endswith("makes it again: move it elsewhere\n")  # the user's file, as at gen/ or trd/: not 'remove it'
    assert len(tool_calls(env["log"])) == calls and (out / "link").read_text() == "mine"


@pytest.mark.parametrize("name", ["link", "platform"])
def test_a_step_folder_that_is_a_link_is_refused_before_any_step_and_its_folder_kept(capsys, env, name):
    """A build's link/ moved to a bigger disk and linked back: the rebuild ran the platform and kernel (hours
    with the real tools) and took the published set down, then stopped at the link's start with 'Cannot call
    rmtree on a symbolic link'. Refused before anything runs, the folder it points to as it was."""
    assert build(capsys, env)[0] == 0
    out, big = env["out"], env["tmp"] / "bigdisk"
    big.mkdir()
    shutil.move(out / name, big / name)
    (big / name / "mine.txt").write_text("mine")
    (out / name).symlink_to(big / name)
    before = sorted(p.relative_to(big).as_posix() for p in big.rglob("*"))
    calls = len(tool_calls(env["log"]))
    published = {n: (out / n).read_bytes() for n in DELIVERABLES}
    rc, _, err = build(capsys, env, "--force")
    assert rc == 2 and f"{out / name} is a link to {big / name}, and a build removes {name}/ whole" in err
    assert err.endswith("makes it again: remove the link (for a build on another disk, give --out there)\n")
    assert len(tool_calls(env["log"])) == calls and {n: (out / n).read_bytes() for n in DELIVERABLES} == published
    assert sorted(p.relative_to(big).as_posix() for p in big.rglob("*")) == before


def test_failed_link_is_resumed_without_rebuilding_platform_or_kernel(capsys, env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "link")
    rc, _, err = build(capsys, env)
    assert rc == 2 and "v++ failed with exit status 1" in err and "fake link failure" in err
    assert steps_run(env) == ["platform", "kernel", "link"]
    assert not any((env["out"] / n).exists() for n in DELIVERABLES)
    assert not (env["out"] / "stamps" / "link.json").exists()
    monkeypatch.delenv("FAKE_FAIL")
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link", "link"]  # only the link ran again
    assert all((env["out"] / n).is_file() for n in DELIVERABLES)


def test_changed_dpu_options_rebuild_kernel_and_link_but_not_the_platform(capsys, env, tmp_path):
    assert build(capsys, env)[0] == 0
    options = load_config(CONFIG).to_dict()
    options["channel_augmentation"] = False  # changes dpu_conf.vh and the fingerprint, not the platform
    edited = tmp_path / "edited" / f"{CONFIG}.toml"  # same name, so the same build folder and params.tcl
    edited.parent.mkdir()
    edited.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items()) + "\n")
    rc, _, err = build(capsys, env, config=str(edited))
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link", "kernel", "link"]
    arch = json.loads((env["out"] / "arch.json").read_text())
    assert arch["fingerprint"] == "0x101000012010404"  # bit 26 (channel augmentation) cleared


def test_timing_failure_publishes_nothing_and_says_where_the_files_are(capsys, env, monkeypatch):
    monkeypatch.setenv("FAKE_TIMING_RPT", "timing_failed.rpt")
    rc, _, err = build(capsys, env)
    assert rc == 2
    assert "timing is not met: setup WNS -0.187 ns on 612 endpoints" in err
    assert "clk_out6_dpu_platform_clk_wiz_0_0" in err and "Nothing was published" in err
    assert not any((env["out"] / n).exists() for n in (*DELIVERABLES, "build_info.json"))
    assert (env["out"] / "collect" / "dpu.bit").is_file()  # kept for inspection


def test_a_rebuild_removes_the_old_published_files_first(capsys, env, monkeypatch):
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    assert not any((env["out"] / n).exists() for n in (*DELIVERABLES, "build_info.json"))


def test_from_and_to_select_steps(capsys, env):
    rc, out, err = build(capsys, env, "--to", "kernel")
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel"] and "link" not in out
    rc, out, err = build(capsys, env, "--from", "link")
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link"]
    assert (env["out"] / "dpu.xclbin").is_file()


def test_starting_after_a_missing_step_says_which_step_to_run(capsys, env):
    rc, _, err = build(capsys, env, "--from", "link")
    assert rc == 2 and "platform.xsa, which step platform makes: run with --from platform" in err
    assert steps_run(env) == [] and ".dpupose.lock" not in os.listdir(env["out"])  # no lock file left behind


def test_generate_alone_needs_no_tools(capsys, env, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc, _, err = build(capsys, env, "--to", "generate")
    assert rc == 0, err
    assert (env["out"] / "gen" / "params.tcl").read_text().startswith("# Generated by dpupose.hwbuild.params")


def refused(capsys, env, *extra, config=CONFIG):
    rc, out, err = build(capsys, env, *extra, config=config)
    assert rc == 2, (out, err)
    assert "the build did not start (nothing was run or written)" in err
    assert steps_run(env) == []
    assert not env["out"].exists()
    return err


def test_clock_above_the_safe_limit_is_refused_unless_i_know(capsys, env):
    err = refused(capsys, env, config="u96v2-b1600-300mhz")
    assert "300/600 MHz" in err and "above the 200 MHz known safe" in err and "--i-know" in err
    rc, _, err = build(capsys, env, "--i-know", config="u96v2-b1600-300mhz")
    assert rc == 0, err
    info = json.loads((env["out"] / "build_info.json").read_text())
    assert info["clock_override"] is True and info["clocks_mhz"] == {"dpu_1x": 300, "dpu_2x": 600}


def test_configuration_that_does_not_fit_is_refused(capsys, env):
    err = refused(capsys, env, config="u96v2-b2304-dsphigh")
    assert "does not fit the ZU3EG: DSP 438 > 360 available" in err


def test_illegal_configuration_is_refused(capsys, env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('arch = "B1600"\nclock_mhz = 200\nalu_parallel = 16\n')
    err = refused(capsys, env, config=str(bad))
    assert "alu_parallel" in err


@pytest.mark.parametrize("name", ["my build", "b[1]", "b$x", "b(1)", "b;c", "b'c"])
def test_a_build_folder_whose_name_vivado_does_not_support_is_refused(capsys, env, name):
    env["out"] = env["tmp"] / name / CONFIG
    err = refused(capsys, env)
    assert f"paths: the build folder {env['out']} holds " in err
    assert "which Vivado does not support in file and folder names (UG895" in err and "give --out a folder" in err


def test_board_files_and_a_trd_folder_whose_names_vivado_does_not_support_are_refused(capsys, env):
    import shutil

    for name in TRD_SKELETON:  # the TRD unpacked, as a folder
        (env["tmp"] / "trd copy" / "DPUCZDX8G" / name).parent.mkdir(parents=True, exist_ok=True)
        (env["tmp"] / "trd copy" / "DPUCZDX8G" / name).write_text(f"// {name}\n")
    env["trd"] = env["tmp"] / "trd copy" / "DPUCZDX8G"
    shutil.copytree(env["repo"], env["tmp"] / "bdf {2023}")
    env["repo"] = env["tmp"] / "bdf {2023}"
    err = refused(capsys, env)
    assert f"the TRD folder DPU_TRD {env['trd']} holds blanks, which Vivado does not support" in err
    assert f"the board files BOARD_REPO {env['repo']} holds blanks, '{{', '}}', which Vivado" in err
    # The same folders under plain names build.
    env["trd"] = (env["tmp"] / "trd copy").rename(env["tmp"] / "trd_copy") / "DPUCZDX8G"
    env["repo"] = env["repo"].rename(env["tmp"] / "bdf_2023")
    rc, _, err = build(capsys, env)
    assert rc == 0, err


def test_missing_trd_archive_is_refused(capsys, env):
    env["trd"] = env["tmp"] / "nowhere" / "DPUCZDX8G.tar.gz"
    err = refused(capsys, env)
    assert f"DPU_TRD={env['trd']}: no such file or folder" in err and "Vitis AI 2.5 DPU TRD" in err


def test_trd_of_another_release_is_refused(capsys, env):
    names = [n.replace("v4_0_0", "v4_1_0") for n in TRD_SKELETON]
    env["trd"] = make_trd_archive(env["tmp"] / "vai3" / "DPUCZDX8G.tar.gz", names)
    err = refused(capsys, env)
    assert "IP v4.1.0" in err and "needs IP v4.0" in err


def test_wrong_vivado_release_is_refused(capsys, env, monkeypatch):
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "Vivado v2021.2 (64-bit)")
    err = refused(capsys, env)
    assert "vivado on PATH is release 2021.2" in err and "needs 2022.1" in err and "settings64.sh" in err


def test_board_files_of_another_version_are_refused(capsys, env):
    env["repo"] = make_board_repo(env["tmp"] / "bdf13", version="1.3", vendor="Avnet-tria")
    err = refused(capsys, env)
    assert "board files 1.3 (vendor Avnet-tria" in err and "not the pinned ultra96v2 1.2" in err


def test_configuration_for_another_board_is_refused(capsys, env):
    err = refused(capsys, env, "--board", "zcu104")
    assert "is for board ultra96v2, not zcu104" in err and "or leave out --board (BOARD= with make)" in err


def status(capsys, env, config=CONFIG):
    common = ["--config", config, "--trd", str(env["trd"]), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    rc = cli.main(["hw", "status", *common])
    return rc, capsys.readouterr().out.splitlines()


def assert_failed_line(line, step, before, detail):
    """`line` says `step` failed at a minute between `before` and now, with `detail` after the time."""
    m = re.fullmatch(rf"{step:9s} failed \(last run (\d{{4}}-\d\d-\d\d \d\d:\d\d); (.*)\)", line)
    assert m, line
    when = datetime.strptime(m[1], "%Y-%m-%d %H:%M")
    assert before.replace(second=0, microsecond=0) <= when <= datetime.now(), line
    assert m[2] == detail, line


def test_status_and_commands(capsys, env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "link")
    before = datetime.now()
    build(capsys, env)
    monkeypatch.delenv("FAKE_FAIL")
    common = ["--config", CONFIG, "--trd", str(env["trd"]), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    rc, lines = status(capsys, env)
    assert rc == 0
    assert lines[:2] == ["platform  up to date", "kernel    up to date"]
    assert_failed_line(lines[2], "link", before, f"see {env['out'] / 'logs' / 'link.log'}")  # not "not built"
    assert lines[3:] == ["published: nothing"]  # and no previous/: nothing was published before
    # A generated file edited by hand: the next build's generate step writes it again as the configuration has
    # it, before any tool step is judged, so they stay up to date (and status writes nothing there).
    (env["out"] / "gen" / "params.tcl").write_text("# edited\n")
    assert cli.main(["hw", "status", *common]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["platform  up to date", "kernel    up to date"]
    assert (env["out"] / "gen" / "params.tcl").read_text() == "# edited\n"
    (env["out"] / "kernel" / "dpu.xo").write_text("edited\n")  # an output changed since its stamp
    assert cli.main(["hw", "status", *common]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["platform  up to date", "kernel    stale"]
    assert cli.main(["hw", "commands", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = env["out"]
    assert lines[0::2] == [
        f"# platform: run in {out}/platform",
        f"# kernel: run in {out}/kernel",
        f"# link: run in {out}",
    ]
    assert lines[1].startswith("vivado -mode batch") and lines[5].startswith("v++ -l -t hw")
    assert f"-tclargs {env['out'] / 'gen' / 'params.tcl'} {env['repo']}" in lines[1]
    assert f"{env['out'] / 'trd'} {env['out'] / 'gen' / 'dpu_conf.vh'}" in lines[3]
    assert steps_run(env) == ["platform", "kernel", "link"]  # status and commands ran no tool


def test_status_of_a_configuration_it_cannot_read_is_an_error_not_a_failed_check(capsys, env, tmp_path):
    """A mistyped --config, or one for another board, is a command given wrong (2, one line), not a build
    that is not up to date (1); and it says nothing of the TRD or the tools, which status does not need."""
    for extra in (["--config", "u96v2-b1600-pyqn"], ["--config", CONFIG, "--board", "zcu104"]):
        assert cli.main(["hw", "status", *extra, "--out", str(tmp_path / "hw")]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("dpupose: error: "), err
        assert ("unknown DPU configuration 'u96v2-b1600-pyqn'" in err) != ("not zcu104" in err), err
        assert "DPU_TRD" not in err and "vivado" not in err


def test_status_of_a_damaged_build_says_so(capsys, env):
    assert build(capsys, env)[0] == 0
    common = ["--config", CONFIG, "--trd", str(env["trd"]), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    assert cli.main(["hw", "status", *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json")
    (env["out"] / "dpu.hwh").unlink()
    assert cli.main(["hw", "status", *common]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "published: dpu.bit, dpu.xclbin, arch.json; dpu.hwh missing (rebuild it with "
        f"`dpupose hw build --config {CONFIG} --out {env['out']} --from collect`)"
    )
    for damaged in ("{not json", "{}", '{"timing": 3}'):
        (env["out"] / "build_info.json").write_text(damaged)
        assert cli.main(["hw", "status", *common]) == 1
        last = capsys.readouterr().out.splitlines()[-1]
        assert last.startswith("published: unknown (") and "--from report" in last, last
    # The deliverables copied, build_info.json not yet written: not "nothing".
    (env["out"] / "build_info.json").unlink()
    assert cli.main(["hw", "status", *common]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert (
        last.startswith("published: dpu.bit, dpu.xclbin, arch.json without build_info.json")
        and f"--out {env['out']} --from report" in last  # the hint names the same build folder
    )


def test_commands_without_inputs_leave_the_variables_to_the_shell(capsys, env, monkeypatch):
    import os
    import subprocess
    from pathlib import Path

    from dpupose.hwbuild.commands import kernel_argv, link_argv, platform_argv
    from dpupose.hwbuild.layout import BuildPaths

    monkeypatch.delenv("DPU_TRD", raising=False)
    monkeypatch.delenv("BOARD_REPO", raising=False)
    assert cli.main(["hw", "commands", "--config", CONFIG, "--out", str(env["out"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "DPU_TRD not given" in lines[0] and "BOARD_REPO not given" in lines[1]
    commands = [line for line in lines if not line.startswith("#")]
    # bash reads the printed lines with the variables set (a space in one, to check the quoting)
    shell_env = {**os.environ, "DPU_TRD": "/opt/dpu trd", "BOARD_REPO": "/src/bdf"}
    read = [
        subprocess.run(
            ["bash", "-c", f"set -- {line}; printf '%s\\0' \"$@\""], env=shell_env, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")[:-1]
        for line in commands
    ]
    paths = BuildPaths.for_config(CONFIG, env["out"])
    trd, repo = Path("/opt/dpu trd"), Path("/src/bdf")
    assert read == [platform_argv(paths, repo), kernel_argv(paths, trd), link_argv(paths, trd)]


def test_commands_link_with_the_postlink_hook_only_when_the_trd_has_it(capsys, env, tmp_path):
    from dpupose.hwbuild.inputs import POSTLINK_TCL

    without = make_trd_archive(tmp_path / "old" / "DPUCZDX8G.tar.gz", [n for n in TRD_SKELETON if n != POSTLINK_TCL])
    for trd, hooked in ((env["trd"], True), (without, False)):
        args = ["--config", CONFIG, "--trd", str(trd), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
        assert cli.main(["hw", "commands", *args]) == 0
        link = capsys.readouterr().out.splitlines()[-1]
        assert link.startswith("v++ -l") and ("--xp" in link) == hooked


def test_status_of_a_published_file_cut_short_says_so(capsys, env):
    """A published file truncated or replaced after the build (a copy cut short) was reported as published,
    timing met, exit 0: build_info.json records each file's size, and status holds the files to it."""
    assert build(capsys, env)[0] == 0
    common = ["--config", CONFIG, "--trd", str(env["trd"]), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    hwh = env["out"] / "dpu.hwh"
    size = hwh.stat().st_size
    hwh.write_bytes(hwh.read_bytes()[:10])
    assert cli.main(["hw", "status", *common]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json; dpu.hwh (10 bytes, {size} as published) changed since "
        f"the build published it (publish them again with `dpupose hw build --config {CONFIG} --out {env['out']} "
        "--from collect`)"
    )
    rc, out, err = build(capsys, env, "--from", "collect")
    assert rc == 0, err
    assert hwh.stat().st_size == size
    assert cli.main(["hw", "status", *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (")


def flip_last_byte(path):
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    return data


def test_build_info_records_each_file_s_sha256_and_status_holds_the_files_to_it(capsys, env):
    """build_info.json recorded each published file's size only, so a file edited or replaced by another of
    the same size (another build's dpu.hwh, a bit flipped) was reported as published, timing met: it records
    the sha256 too, and status compares it."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    info = json.loads((out / "build_info.json").read_text())
    for name in DELIVERABLES:
        data = (out / name).read_bytes()
        assert info["artifacts"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    flip_last_byte(out / "dpu.bit")
    rc, lines = status(capsys, env)
    assert rc == 1 and lines[-1] == (
        "published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json; dpu.bit (same size, not the sha256 published) changed "
        f"since the build published it (publish them again with `dpupose hw build --config {CONFIG} --out {out} "
        "--from collect`)"
    )
    # A build_info.json written before the sha256 was recorded: the sizes only, as before.
    for entry in info["artifacts"].values():
        del entry["sha256"]
    (out / "build_info.json").write_text(json.dumps(info))
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[-1].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met")


def failing_reads(monkeypatch, failures):
    """flow.sha256_file raising `failures[path]` (an OSError) for those paths, as a disk's read error (EIO, which
    names no file) or a folder put where the file was after it was listed; the others read as they are."""
    from dpupose import fsio
    from dpupose.hwbuild import flow

    real = fsio.sha256_file

    def sha256_file(path):
        if str(path) in failures:
            raise failures[str(path)]
        return real(path)

    monkeypatch.setattr(flow, "sha256_file", sha256_file)


@pytest.mark.parametrize(
    ("error", "words"),
    [(OSError(errno.EIO, "Input/output error"), "Input/output error"), (OSError("no words"), "no words")],
)
def test_status_names_a_file_it_cannot_read_and_its_error(capsys, env, monkeypatch, error, words):
    """A published, kept (previous/) or stamped file whose read fails with an OSError other than a permission
    error (EIO) ended `hw status` in a traceback where it was published, and named no file where it was a
    step's: each is a status line naming the file and the error. A published one is not known to be the
    build's (exit 1); one in previous/ makes that set incomplete and a step's makes it undecided, neither
    changing the exit status."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2  # the set kept in previous/, none published
    monkeypatch.delenv("FAKE_FAIL")
    assert build(capsys, env, "--from", "link")[0] == 0  # published again
    xsa = out / "platform" / "platform.xsa"  # the platform's output, the link's input
    failing_reads(monkeypatch, {str(out / "dpu.bit"): error, str(prev / "dpu.hwh"): error, str(xsa): error})
    rc, lines = status(capsys, env)
    assert rc == 1
    assert lines[:3] == [
        f"platform  built, cannot tell if current ({xsa}: {words})",
        "kernel    up to date",
        f"link      built, cannot tell if current ({xsa}: {words})",
    ]
    assert lines[3:] == [
        f"published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json; {out / 'dpu.bit'} ({words}) cannot be read "
        f"(publish them again with `dpupose hw build --config {CONFIG} --out {out} --from collect`)",
        f"previous: {prev} is not a complete set: dpu.hwh cannot be read ({words})",
    ]
    # A folder put where a published file was (after status listed it) is the same: a line, no traceback.
    failing_reads(monkeypatch, {str(out / "arch.json"): IsADirectoryError(errno.EISDIR, "Is a directory", "x")})
    rc, lines = status(capsys, env)
    assert rc == 1 and lines[3] == (
        f"published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json; {out / 'arch.json'} (Is a directory) cannot be read "
        f"(publish them again with `dpupose hw build --config {CONFIG} --out {out} --from collect`)"
    )
    assert lines[:3] == ["platform  up to date", "kernel    up to date", "link      up to date"]


@pytest.mark.parametrize("damaged", ["[1]", "null", '"x"', "5", '{"inputs": "x", "outputs": []}'])
def test_a_stamp_of_another_shape_marks_its_step_stale(capsys, env, damaged):
    """A stamp that is JSON but not a stamp's object (a list, null, a string) ended status and build in
    AttributeError tracebacks ('list' object has no attribute 'get'), and build --from report in a TypeError:
    like an unreadable one, it marks its step stale, the build runs that step again and the report records the
    tools that built the files."""
    assert build(capsys, env)[0] == 0
    common = ["--config", CONFIG, "--trd", str(env["trd"]), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    (env["out"] / "stamps" / "kernel.json").write_text(damaged)
    rc, out, err = build(capsys, env, "--from", "report")
    assert rc == 0, err
    assert json.loads((env["out"] / "build_info.json").read_text())["tools"] == {
        "v++": "v++ v2022.1 (64-bit)",
        "vivado": "Vivado v2022.1 (64-bit)",
    }
    assert cli.main(["hw", "status", *common]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "platform  up to date",
        "kernel    stale",
        "link      up to date, but kernel runs first (a dpu.xo that differs runs link again)",
    ]
    before = steps_run(env)
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert steps_run(env)[len(before) :] == ["kernel"]  # the same dpu.xo again: the link is still up to date


def test_report_alone_needs_no_tools_and_records_the_versions_that_built_the_files(capsys, env, monkeypatch):
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("PATH", "/nonexistent")
    rc, out, err = build(capsys, env, "--from", "collect")
    assert rc == 0, err
    info = json.loads((env["out"] / "build_info.json").read_text())
    assert info["tools"] == {"v++": "v++ v2022.1 (64-bit)", "vivado": "Vivado v2022.1 (64-bit)"}


def test_a_folder_that_no_build_made_is_not_emptied(capsys, env):
    # A user's own bitstream and project notes in --out: a build would unlink dpu.bit and wipe platform/.
    out = env["out"]
    (out / "platform").mkdir(parents=True)
    (out / "platform" / "notes.txt").write_text("mine")
    (out / "dpu.bit").write_text("my bitstream")
    (out / "readme.txt").write_text("kept either way")
    rc, _, err = build(capsys, env)
    assert rc == 2 and "not a dpupose hardware build folder" in err and "platform, dpu.bit" in err
    assert (out / "dpu.bit").read_text() == "my bitstream"
    assert (out / "platform" / "notes.txt").read_text() == "mine"
    assert tool_calls(env["log"]) == [] and not (out / "gen").exists()


@pytest.mark.parametrize("theirs", ["logs/link.log", "logs/vpp/v++.log", "stamps/kernel.json"])
def test_a_folder_no_build_made_keeps_its_logs_and_stamps_of_a_build_s_names(capsys, env, theirs):
    """A folder of the user's own earlier (hand-run) build given as --out: its logs/link.log was emptied by the
    build's link (each tool's log is opened for writing), a v++ log in logs/vpp/ written over, a stamp
    replaced. Such names, as the build's own step folders, stop a build of a folder no build made."""
    out = env["out"]
    (out / theirs).parent.mkdir(parents=True)
    (out / theirs).write_text("mine")
    rc, _, err = build(capsys, env)
    assert rc == 2 and "not a dpupose hardware build folder" in err
    assert f"but holds {theirs.split('/v++')[0]}, which a build would replace or delete" in err
    assert (out / theirs).read_text() == "mine"
    assert tool_calls(env["log"]) == [] and not (out / "gen").exists()


def test_a_folder_with_only_unrelated_files_builds_and_keeps_them(capsys, env):
    out = env["out"]
    (out / "logs").mkdir(parents=True)  # logs/ only receives logs of the build's own names
    (out / "logs" / "my-notes.log").write_text("mine")
    (out / "readme.txt").write_text("mine")
    rc, _, err = build(capsys, env)
    assert rc == 0, err
    assert (out / "readme.txt").read_text() == "mine" and (out / "dpu.bit").is_file()
    assert (out / "logs" / "my-notes.log").read_text() == "mine"
    # The next build of the same folder is recognised as an earlier build's (its gen/params.tcl).
    (out / "dpu.bit").unlink()
    rc, _, err = build(capsys, env, "--force")
    assert rc == 0, err
    assert (out / "dpu.bit").is_file()


def test_commands_for_a_folder_not_built_yet_say_what_to_run_first(capsys, env, monkeypatch):
    monkeypatch.chdir(env["tmp"])
    args = ["--config", CONFIG, "--trd", str(env["trd"]), "--board-repo", "bdf", "--out", str(env["out"])]
    assert cli.main(["hw", "commands", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("is an archive" in line and "kernel step" in line for line in lines)
    assert any(
        line.endswith(f"`dpupose hw build --config {CONFIG} --out {env['out']} --to generate`") for line in lines
    )
    platform = next(line for line in lines if line.startswith("vivado") and "platform.tcl" in line)
    assert f" {env['repo']} " in platform  # the relative board folder, absolute: each step runs elsewhere


def test_the_hints_name_the_configuration_and_folder_as_given_and_paste_into_a_shell(capsys, env, tmp_path):
    # They named a .toml configuration by its name ("unknown DPU configuration") and left blanks unquoted.
    config = tmp_path / "my configs" / "b1600.toml"
    config.parent.mkdir()
    config.write_text((tcl_dir().parents[1] / "hw" / "dpu" / "configs" / f"{CONFIG}.toml").read_text())
    out = tmp_path / "my builds" / "b1600"
    assert cli.main(["hw", "commands", "--config", str(config), "--out", str(out)]) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if "--to generate" in line)
    command = hint.split("`")[1]
    assert shlex.split(command) == [
        "dpupose",
        "hw",
        "build",
        "--config",
        str(config),
        "--out",
        str(out),
        "--to",
        "generate",
    ]
    (out / "gen").mkdir(parents=True)
    (out / "dpu.bit").write_bytes(b"bit")  # published without build_info.json: status says how to finish
    assert cli.main(["hw", "status", "--config", str(config), "--out", str(out)]) == 1
    hint = capsys.readouterr().out.splitlines()[-1]
    assert shlex.split(hint.split("`")[1])[3:] == ["--config", str(config), "--out", str(out), "--from", "report"]


def test_a_build_folder_moved_elsewhere_is_still_up_to_date(capsys, env):
    # Stamps name their outputs relative to the build folder: a folder moved or copied whole (another
    # checkout, another machine) keeps its hours of tool runs.
    assert build(capsys, env)[0] == 0
    before = len(tool_calls(env["log"]))
    moved = env["tmp"] / "elsewhere" / CONFIG
    moved.parent.mkdir()
    env["out"].rename(moved)
    env["out"] = moved
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == before
    assert "platform  up to date" in out and "link      up to date" in out
    assert all((moved / n).is_file() for n in DELIVERABLES)


def test_board_files_at_another_path_keep_the_platform_up_to_date(capsys, env):
    # A build folder copied to another machine meets the board files checked out at another path there:
    # the same files, so the platform (and the link that follows it) is not built again.
    assert build(capsys, env)[0] == 0
    before = len(tool_calls(env["log"]))
    env["repo"] = env["repo"].rename(env["tmp"] / "elsewhere-bdf")
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == before
    assert "platform  up to date" in out and "link      up to date" in out


def test_a_changed_file_of_the_board_s_folder_rebuilds_the_platform(capsys, env):
    # Vivado reads the whole board folder (the PS preset is in preset.xml), not only board.xml.
    assert build(capsys, env)[0] == 0
    (env["repo"] / "ultra96v2" / "1.2" / "preset.xml").write_text("<ip_presets/>\n")
    before = len(tool_calls(env["log"]))
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert [step_of(c) for c in tool_calls(env["log"])[before:]] == ["platform"]  # the fake's xsa: the same again


def test_a_platform_stamp_of_an_earlier_version_naming_the_board_repository_still_counts(capsys, env):
    # Earlier versions recorded board.xml's sha256 and the repository's path in place of the folder's digest.
    assert build(capsys, env)[0] == 0
    before = len(tool_calls(env["log"]))
    stamp = env["out"] / "stamps" / "platform.json"
    doc = json.loads(stamp.read_text())
    board_xml = env["repo"] / "ultra96v2" / "1.2" / "board.xml"
    del doc["inputs"]["board files"]
    doc["inputs"]["board.xml"] = hashlib.sha256(board_xml.read_bytes()).hexdigest()
    doc["inputs"]["board_repo"] = str(env["repo"].resolve())
    stamp.write_text(json.dumps(doc))
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == before
    doc["inputs"]["board_repo"] = str(env["tmp"] / "another-bdf")  # a stamp of other board files
    stamp.write_text(json.dumps(doc))
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert [step_of(c) for c in tool_calls(env["log"])[before:]] == ["platform"]  # the fake's xsa: the same again


def test_stamps_of_an_earlier_version_naming_absolute_paths_still_count(capsys, env):
    assert build(capsys, env)[0] == 0
    before = len(tool_calls(env["log"]))
    for stamp in (env["out"] / "stamps").glob("*.json"):
        doc = json.loads(stamp.read_text())
        assert all(not name.startswith("/") for name in doc["outputs"])  # relative now
        doc["outputs"] = {str(env["out"].resolve() / name): digest for name, digest in doc["outputs"].items()}
        stamp.write_text(json.dumps(doc))
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == before


def test_a_second_build_into_a_folder_in_use_is_refused_before_any_tool_runs(capsys, env):
    from dpupose.fsio import lock_folder

    env["out"].mkdir(parents=True)
    with lock_folder(env["out"], "dpupose hw build"):  # a first build, running Vivado there
        rc, _, err = build(capsys, env)
    assert rc == 2 and steps_run(env) == []
    assert f"--out {env['out']} is in use by another `dpupose hw build` (process {os.getpid()})" in err
    rc, _, err = build(capsys, env)  # once it has ended
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link"]


def test_build_info_records_step_times_to_a_tenth_of_a_second(capsys, env):
    assert build(capsys, env)[0] == 0
    seconds = json.loads((env["out"] / "build_info.json").read_text())["step_seconds"]
    assert set(seconds) == {"generate", "platform", "kernel", "link", "collect"}  # report writes the file
    assert all(v == round(v, 1) for v in seconds.values()), seconds


def test_a_failed_rerun_of_a_step_drops_its_stamp_and_a_failed_collect_its_published_files(capsys, env, monkeypatch):
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    assert not (env["out"] / "stamps" / "link.json").exists()  # `hw status`: link failed, not stale
    monkeypatch.delenv("FAKE_FAIL")
    assert build(capsys, env)[0] == 0 and (env["out"] / "dpu.bit").is_file()
    # The link's files changed since they were published: collecting them again unpublishes first.
    (hwh,) = (env["out"] / "link").rglob("*.hwh")
    hwh.write_text("<MODULE/>")
    rc, _, err = build(capsys, env, "--from", "collect")
    assert rc == 2 and "does not describe a DPUCZDX8G" in err
    assert not any((env["out"] / n).exists() for n in (*DELIVERABLES, "build_info.json"))


def test_a_dangling_link_of_a_build_s_name_and_many_clashes_are_named(capsys, env):
    out = env["out"]
    out.mkdir(parents=True)
    (out / "dpu.bit").symlink_to(env["tmp"] / "nowhere.bit")  # a user's link: not followed, not replaced
    rc, _, err = build(capsys, env)
    assert rc == 2 and "but holds dpu.bit, which a build would replace or delete: move it elsewhere" in err
    assert (out / "dpu.bit").is_symlink()
    for name in ("platform", "kernel", "link", "collect", "trd", "dpu.hwh"):
        (out / name).mkdir()
    rc, _, err = build(capsys, env)
    assert rc == 2 and "holds platform, kernel, link, collect and 3 more, which a build" in err


def test_a_renamed_file_of_the_board_s_folder_rebuilds_the_platform(capsys, env):
    preset = env["repo"] / "ultra96v2" / "1.2" / "preset.xml"
    preset.write_text("<ip_presets/>\n")
    assert build(capsys, env)[0] == 0
    preset.rename(preset.with_name("preset_old.xml"))  # the same contents under another name
    before = len(tool_calls(env["log"]))
    rc, _, err = build(capsys, env)
    assert rc == 0, err
    assert [step_of(c) for c in tool_calls(env["log"])[before:]] == ["platform"]


def test_a_kernel_packaged_by_another_vivado_is_recorded_beside_the_platform_s(capsys, env, monkeypatch):
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "Vivado v2022.1.1 (64-bit)")
    rc, _, err = build(capsys, env, "--from", "kernel")
    assert rc == 0, err
    assert steps_run(env)[3:] == ["kernel"]  # the platform step is not selected; the same dpu.xo: no link
    info = json.loads((env["out"] / "build_info.json").read_text())
    assert info["tools"] == {
        "v++": "v++ v2022.1 (64-bit)",
        "vivado": "Vivado v2022.1 (64-bit)",
        "vivado (kernel)": "Vivado v2022.1.1 (64-bit)",
    }


def test_an_edited_postlink_script_of_a_trd_folder_relinks(capsys, env):
    from dpupose.hwbuild.inputs import POSTLINK_TCL

    root = env["tmp"] / "trd_folder"
    for name in TRD_SKELETON:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"// {name}\n")
    env["trd"] = root
    assert build(capsys, env)[0] == 0
    (root / POSTLINK_TCL).write_text("# edited\n")
    rc, _, err = build(capsys, env)
    assert rc == 0, err
    # The kernel reruns (the TRD folder's digest changed) and makes the same dpu.xo; the link reruns for the
    # script v++ runs after its system link.
    assert steps_run(env)[3:] == ["kernel", "link"]


def test_a_changed_pin_of_the_platform_record_rebuilds_the_platform(capsys, env, monkeypatch):
    import shutil

    from dpupose.dpu.paths import HW_DIR_ENV, hw_dir

    hw = shutil.copytree(hw_dir(), env["tmp"] / "hw")
    monkeypatch.setenv(HW_DIR_ENV, str(hw))
    assert build(capsys, env)[0] == 0
    record = hw / "boards" / "ultra96v2" / "platform.toml"
    record.write_text(record.read_text().replace('pin = "F4"', 'pin = "F5"'))  # only platform.xdc changes
    rc, _, err = build(capsys, env)
    assert rc == 0, err
    assert "F5" in (env["out"] / "gen" / "platform.xdc").read_text()
    assert steps_run(env)[3:] == ["platform"]


def test_a_failed_link_resumes_with_from_link(capsys, env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env)[0] == 2
    monkeypatch.delenv("FAKE_FAIL")
    rc, out, err = build(capsys, env, "--from", "link")  # the link step reads the TRD's postlink script
    assert rc == 0, err
    assert steps_run(env) == ["platform", "kernel", "link", "link"]
    assert all((env["out"] / n).is_file() for n in DELIVERABLES)


def test_a_build_stopping_before_the_report_does_not_say_it_built_the_files(capsys, env):
    assert build(capsys, env)[0] == 0
    rc, out, err = build(capsys, env, "--to", "link")  # all up to date: the earlier files stay published
    assert rc == 0, err
    assert (env["out"] / "dpu.bit").is_file() and "built " not in out
    rc, out, _ = build(capsys, env)
    assert rc == 0 and f"built dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {env['out']}" in out


def test_a_clock_accepted_with_i_know_is_still_a_warning(capsys, env):
    rc, _, err = build(capsys, env, "--i-know", "--to", "generate", config="u96v2-b1600-300mhz")
    assert rc == 0, err
    assert "above the 200 MHz known safe on the Avnet Ultra96-V2" in err and "accepted with --i-know" in err


def test_steps_of_a_minute_or_more_print_their_minutes(capsys, env, monkeypatch):
    from dpupose.hwbuild import flow

    clock = iter(range(0, 10**6, 90))  # every reading 90 s after the one before: each step takes 1.5 min

    class Time:
        @staticmethod
        def monotonic():
            return next(clock)

    monkeypatch.setattr(flow, "time", Time)
    rc, out, err = build(capsys, env)
    assert rc == 0, err
    assert "platform  ran (1.5 min)" in out and "link      ran (1.5 min)" in out


@pytest.mark.parametrize(
    ("where", "damage", "message"),
    [
        ("dpu.xclbin", b"not an xclbin", "is not an xclbin (no xclbin2 header)"),
        ("arch.json", b'{"fingerprint": "0x101000012010404"}', "the kernel was packaged with another dpu_conf.vh"),
    ],
)
def test_linked_files_that_are_not_this_configuration_s_are_not_collected(capsys, env, where, damage, message):
    assert build(capsys, env, "--to", "link")[0] == 0
    (linked,) = (env["out"] / "link").rglob(where)
    linked.write_bytes(damage)
    rc, _, err = build(capsys, env, "--from", "collect")  # (a whole build would link again: its xclbin changed)
    assert rc == 2 and message in err
    assert not (env["out"] / "collect").exists() and not (env["out"] / "dpu.bit").exists()


def test_commands_read_a_trd_folder_where_it_is(capsys, env):
    root = env["tmp"] / "trd_folder"
    for name in TRD_SKELETON:
        (root / "DPUCZDX8G" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "DPUCZDX8G" / name).write_text(f"// {name}\n")
    args = ["--config", CONFIG, "--trd", str(root), "--board-repo", str(env["repo"]), "--out", str(env["out"])]
    assert cli.main(["hw", "commands", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    kernel = shlex.split(lines[lines.index(f"# kernel: run in {env['out'] / 'kernel'}") + 1])
    link = shlex.split(lines[-1])
    # Not unpacked into the build folder (only an archive is): the folder the user gave, down to dpu_ip/'s parent.
    assert kernel[kernel.index("-tclargs") + 2] == str((root / "DPUCZDX8G").resolve())
    assert f"param:compiler.userPostSysLinkOverlayTcl={(root / 'DPUCZDX8G').resolve()}/prj/Vitis/syslink/" in " ".join(
        link
    )
    assert str(env["out"] / "trd") not in "\n".join(lines)


PUBLISHED = (*DELIVERABLES, "build_info.json")


def published_bytes(folder):
    return {name: (folder / name).read_bytes() for name in PUBLISHED if (folder / name).is_file()}


def edited_config(tmp_path):
    """The configuration without channel augmentation, under the same name (so the same build folder): its
    kernel, link and published arch.json differ (fingerprint 0x101000012010404)."""
    options = load_config(CONFIG).to_dict()
    options["channel_augmentation"] = False
    edited = tmp_path / "edited" / f"{CONFIG}.toml"
    edited.parent.mkdir(exist_ok=True)
    edited.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items()) + "\n")
    return str(edited)


def test_a_failed_rebuild_keeps_the_last_published_set_in_previous_and_status_says_so(capsys, env, monkeypatch):
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    first = published_bytes(out)
    assert sorted(first) == sorted(PUBLISHED)
    monkeypatch.setenv("FAKE_FAIL", "link")
    before = datetime.now()
    rc, _, err = build(capsys, env, "--from", "link", "--force")
    assert rc == 2 and "fake link failure" in err
    assert f"dpupose: nothing is published now; the last published set is kept in {prev}\n" in err
    # Nothing current is published (no mix of builds); the last set is whole, byte for byte, in previous/.
    assert not any(os.path.lexists(out / n) for n in PUBLISHED)
    assert published_bytes(prev) == first and sorted(os.listdir(prev)) == sorted(PUBLISHED)
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[:2] == ["platform  up to date", "kernel    up to date"]
    assert_failed_line(lines[2], "link", before, f"see {out / 'logs' / 'link.log'}")
    assert lines[3:] == [
        "published: nothing",
        f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {prev} "
        "(published before the last rebuild; fingerprint 0x101000016010404, WNS 0.021 ns)",
    ]
    # A second failure finds nothing published: previous/ stays the last set that worked.
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    assert published_bytes(prev) == first
    # A good run publishes the new set; previous/ stays the one before, and the output says so.
    monkeypatch.delenv("FAKE_FAIL")
    rc, stdout, err = build(capsys, env)
    assert rc == 0, err
    assert published_bytes(out).keys() == first.keys() and published_bytes(prev) == first
    assert (
        stdout.splitlines()[-1] == f"the set published before it is kept in {prev} (until the next rebuild replaces it)"
    )
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[:3] == ["platform  up to date", "kernel    up to date", "link      up to date"]
    assert lines[3].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met")
    assert not (out / "stamps" / "link.failed.json").exists()
    # The next rebuild that publishes moves this set into previous/, replacing the older one whole.
    second = published_bytes(out)
    rc, _, err = build(capsys, env, config=edited_config(env["tmp"]))
    assert rc == 0, err
    assert published_bytes(prev) == second and sorted(os.listdir(prev)) == sorted(PUBLISHED)
    assert json.loads((out / "arch.json").read_text())["fingerprint"] == "0x101000012010404"
    assert json.loads((prev / "arch.json").read_text())["fingerprint"] == "0x101000016010404"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]  # no temporary left


def test_a_failed_report_or_interrupted_step_is_named_by_status(capsys, env, monkeypatch):
    from dpupose.hwbuild import flow

    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_TIMING_RPT", "timing_failed.rpt")
    before = datetime.now()
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[2] == "link      up to date"
    assert lines[3].startswith("report    failed (last run ")
    error = lines[3].split("; ", 1)[1][:-1]  # the error's first line, shortened to 200 characters
    assert error.startswith("timing is not met: setup WNS -0.187 ns on 612 endpoints") and len(error) <= 200
    assert_failed_line(lines[3], "report", before, error)
    assert lines[4] == "published: nothing" and lines[5].startswith("previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json")
    # Ctrl-C in the link: "interrupted", and the earlier failure of report stays until report next succeeds.
    monkeypatch.delenv("FAKE_TIMING_RPT")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(flow, "run_tool", stopped)
        assert build(capsys, env, "--from", "link", "--force")[0] == 130
    rc, lines = status(capsys, env)
    assert re.fullmatch(r"link      interrupted \(last run \d{4}-\d\d-\d\d \d\d:\d\d\)", lines[2]), lines[2]
    assert lines[3].startswith("report    failed (")
    assert build(capsys, env)[0] == 0
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[2] == "link      up to date" and lines[3].startswith("published: dpu.bit")


@pytest.mark.parametrize("where", ["linking", "swapping"])
def test_a_rebuild_stopped_while_keeping_the_published_set_loses_neither_set(capsys, env, monkeypatch, where):
    """Ctrl-C while the published files are linked into the new previous/, or an error as it replaces the older
    previous/: the published set and the older previous/ stay whole and as they were, and no tool ran."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    assert build(capsys, env, config=edited_config(env["tmp"]))[0] == 0
    current = published_bytes(out)
    assert published_bytes(prev) == older and current["arch.json"] != older["arch.json"]
    calls = len(tool_calls(env["log"]))
    monkeypatch.setenv("FAKE_FAIL", "link")  # without the keeping, the rebuild would lose both sets
    real_link, real_replace, linked = os.link, os.replace, []

    def link(src, dst, *args, **kwargs):
        linked.append(dst)
        if len(linked) == 3:
            raise KeyboardInterrupt
        return real_link(src, dst, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if os.fspath(dst) == os.fspath(prev) and os.fspath(src).endswith(".tmp"):  # the new folder, not the old
            raise OSError(28, "No space left on device", os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, *(("link", link) if where == "linking" else ("replace", replace)))
        rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited_config(env["tmp"]))
    assert rc == (130 if where == "linking" else 2), err
    assert len(tool_calls(env["log"])) == calls  # stopped before the link ran
    assert published_bytes(out) == current and published_bytes(prev) == older
    assert sorted(os.listdir(prev)) == sorted(PUBLISHED)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]  # no temporary left
    rc, lines = status(capsys, env, config=edited_config(env["tmp"]))
    assert rc == 0 and lines[-2].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met")
    assert lines[-1].startswith(f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {prev} (")


def test_previous_is_refused_in_a_folder_no_build_made_and_where_a_build_did_not_put_its_files(capsys, env):
    out, prev = env["out"], env["out"] / "previous"
    prev.mkdir(parents=True)
    (prev / "dpu.bit").write_text("my earlier bitstream")
    rc, _, err = build(capsys, env)
    assert rc == 2 and "not a dpupose hardware build folder" in err and "but holds previous, which" in err
    assert (prev / "dpu.bit").read_text() == "my earlier bitstream" and tool_calls(env["log"]) == []
    (prev / "dpu.bit").unlink()
    prev.rmdir()
    assert build(capsys, env)[0] == 0
    # In a build's folder, previous/ holds only what a rebuild put there: a file of the user's is not replaced.
    prev.mkdir()
    (prev / "notes.txt").write_text("mine")
    calls = len(tool_calls(env["log"]))
    rc, _, err = build(capsys, env, "--from", "link", "--force")
    assert rc == 2 and err.endswith(
        f"dpupose: error: {prev} holds notes.txt, which no build put there, and a rebuild replaces previous/ "
        "whole: move it elsewhere\n"
    )
    assert (prev / "notes.txt").read_text() == "mine" and len(tool_calls(env["log"])) == calls
    assert sorted(published_bytes(out)) == sorted(PUBLISHED)  # nothing was taken down
    (prev / "notes.txt").unlink()
    prev.rmdir()
    prev.symlink_to(env["tmp"])
    rc, _, err = build(capsys, env, "--from", "link", "--force")
    made = f"{prev} is a link to {env['tmp']}, not a folder a build made, and a rebuild keeps the published files"
    assert rc == 2 and made in err and len(tool_calls(env["log"])) == calls
    # status does not show the set a link leads to as the one a rebuild kept (here the first build's).
    prev.unlink()
    shutil.copytree(out, env["tmp"] / "elsewhere", symlinks=True, ignore=shutil.ignore_patterns("previous"))
    prev.symlink_to(env["tmp"] / "elsewhere")
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[-1] == (
        f"previous: {prev} is a link to {env['tmp'] / 'elsewhere'}, not a folder a build made; a build refuses to "
        "run until it is moved elsewhere"
    )


@pytest.mark.parametrize("damage", ["missing", "cut short", "same size"])
def test_a_published_set_that_is_not_one_build_s_does_not_replace_previous(capsys, env, monkeypatch, damage):
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    assert build(capsys, env, config=edited_config(env["tmp"]))[0] == 0
    if damage == "missing":
        (out / "dpu.hwh").unlink()
    elif damage == "cut short":  # not the size build_info.json records: not the file that build published
        (out / "dpu.bit").write_bytes((out / "dpu.bit").read_bytes()[:-1])
    else:  # the size build_info.json records, but not the sha256: another file than the one published
        flip_last_byte(out / "dpu.bit")
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    assert published_bytes(prev) == older  # the last complete set stays
    assert not any(os.path.lexists(out / n) for n in PUBLISHED)  # the mix is not published
    (prev / "dpu.hwh").write_text("<MODULE/>")  # edited in previous/: status says so, and still exits 0
    rc, lines = status(capsys, env, config=edited_config(env["tmp"]))
    assert rc == 0 and lines[-2:] == [
        "published: nothing",
        f"previous: {prev} is not a complete set: dpu.hwh changed since its build published it "
        f"(9 bytes, {len(older['dpu.hwh'])} as published)",
    ]


def test_status_names_a_kept_file_that_no_longer_matches_its_build_info(capsys, env, monkeypatch):
    """previous/ was judged by sizes alone: a kept file edited or replaced by one of the same size was shown as
    the set that worked. Each file is held to the sha256 its build_info.json records (the size where an older
    build_info.json has none), and the previous: line names the files that no longer match."""
    prev = env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    info = json.loads((prev / "build_info.json").read_text())
    for name in DELIVERABLES:
        data = (prev / name).read_bytes()
        assert info["artifacts"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    kept_line = f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {prev} (published before the last rebuild"
    assert status(capsys, env)[1][-1].startswith(kept_line)
    original = flip_last_byte(prev / "dpu.bit")
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[-1] == (
        f"previous: {prev} is not a complete set: dpu.bit changed since its build published it "
        "(same size, not the sha256 published)"
    )
    # An older build_info.json, without sha256: held to the sizes, as before.
    for entry in info["artifacts"].values():
        del entry["sha256"]
    (prev / "build_info.json").write_text(json.dumps(info))
    assert status(capsys, env)[1][-1].startswith(kept_line)
    (prev / "dpu.bit").write_bytes(original + b"!")
    (prev / "arch.json").unlink()
    assert status(capsys, env)[1][-1] == (
        f"previous: {prev} is not a complete set: arch.json is missing; dpu.bit changed since its build published "
        f"it ({len(original) + 1} bytes, {len(original)} as published)"
    )


def stop_between_the_renames(out, pid):
    """The build folder as a rebuild killed outright (kill -9, a power cut) between atomic_dir's two renames
    leaves it: the older previous/ moved aside to .previous.old-PID-XXXXXXXX, the new folder (links to the
    published set, still published) not yet in place, no previous/."""
    hidden = out / f".previous.old-{pid}-5e7a9c01"
    os.rename(out / "previous", hidden)
    new = out / f".previous.{pid}-k1ll3d9x.tmp"
    new.mkdir()
    for name in PUBLISHED:
        os.link(out / name, new / name)
    return hidden


@pytest.mark.parametrize("pid", ["ended", "reused"])
def test_a_kept_set_left_hidden_by_a_rebuild_killed_while_replacing_previous_is_shown_and_put_back(
    capsys, env, monkeypatch, pid
):
    """A rebuild killed between moving previous/ aside and putting the new one in place left the kept set
    under .previous.old-PID-XXXXXXXX: hw status showed no previous: line, and only a later rebuild that replaced
    previous/ again put it back, and not even that where another process had that PID since (a reboot):
    then it stayed hidden for good. Status shows it where it is; the next build, whatever it runs, puts it
    back and removes the temporaries."""
    import subprocess

    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    assert published_bytes(prev) == older
    if pid == "ended":
        child = subprocess.Popen(["true"])
        child.wait()
        number = child.pid
    else:
        number = 1  # running (init): a PID that another process has now
    hidden = stop_between_the_renames(out, number)
    rc, lines = status(capsys, env, config=edited)
    assert rc == 0 and lines[-2].startswith("published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met")
    assert lines[-1] == (
        f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {hidden} (published before the last rebuild; the "
        "last rebuild was stopped while replacing previous/ and left it here; the next `dpupose hw build` puts it "
        "back as previous/; fingerprint 0x101000016010404, WNS 0.021 ns)"
    )
    (hidden / "dpu.hwh").write_text("<MODULE/>")  # a damaged one is named where it is too
    assert status(capsys, env, config=edited)[1][-1] == (
        f"previous: {hidden} is not a complete set: dpu.hwh changed since its build published it (9 bytes, "
        f"{len(older['dpu.hwh'])} as published) (the last rebuild was stopped while replacing previous/ and left "
        "it here; the next `dpupose hw build` puts it back as previous/)"
    )
    (hidden / "dpu.hwh").unlink()
    (hidden / "dpu.hwh").write_bytes(older["dpu.hwh"])
    # The next build, though it runs no tool and publishes nothing (all up to date, --to link), puts it back
    # and leaves no temporary.
    calls = len(tool_calls(env["log"]))
    rc, _, err = build(capsys, env, "--to", "link", config=edited)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == calls
    assert published_bytes(prev) == older and sorted(os.listdir(prev)) == sorted(PUBLISHED)
    assert published_bytes(out) == current
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]
    assert status(capsys, env, config=edited)[1][-1].startswith(
        f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {prev} (published before the last rebuild; fing"
    )


def test_a_rebuild_killed_after_replacing_previous_leaves_nothing_hidden(capsys, env, monkeypatch):
    """Killed after the new previous/ was put in place, before the older one (moved aside) was removed, or
    before the new folder was put in place at all: previous/ is the one status shows, and the next build
    removes what was left, whichever PID it names."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    shutil.copytree(prev, out / ".previous.old-1-0f1e2d3c")  # the older set being removed
    (out / ".previous.1-a2b3c4d5.tmp").mkdir()  # a new folder never put in place
    mine = out / ".previous.old-1"  # a user's hidden folder (or an earlier version's leftover): stays
    shutil.copytree(prev, mine)
    backup = out / ".previous.2024-backup.tmp"  # a user's, of a temporary's like name: stays too
    shutil.copytree(prev, backup)
    rc, lines = status(capsys, env, config=edited)
    assert rc == 0 and lines[-1].startswith(f"previous: dpu.bit, dpu.hwh, dpu.xclbin, arch.json in {prev} (")
    assert build(capsys, env, "--to", "link", config=edited)[0] == 0
    assert published_bytes(prev) == older and published_bytes(mine) == older and published_bytes(backup) == older
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".previous")) == [backup.name, mine.name]


def test_a_rebuild_from_a_shell_inside_previous_says_to_cd_out_of_it(capsys, env, monkeypatch):
    """A shell standing in previous/ stopped the rebuild with atomic_dir's message, which calls it the current
    folder and asks for another folder name: the build folder was not named, and previous/ is no option. One
    line says to cd out of it, before any tool runs, with both sets left as they were."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    calls = len(tool_calls(env["log"]))
    monkeypatch.chdir(prev)
    rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
    assert rc == 2 and err.splitlines()[-1] == (
        f"dpupose: error: the current folder is {prev}, which this rebuild replaces with the set it takes down: "
        f"cd out of it (cd {out}) and build again; nothing was changed"
    )
    assert len(tool_calls(env["log"])) == calls
    assert published_bytes(out) == current and published_bytes(prev) == older
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]


def test_a_rebuild_from_a_shell_in_a_bind_mount_of_previous_says_to_cd_out_of_it(capsys, env, monkeypatch, bind_mount):
    """The check above compared real paths, which a bind mount of previous/ (or of the build folder above it)
    does not tie to it: a shell standing there was left to atomic_dir's message, which asks for another output
    folder. It asks fsio.within, as every other inside-a-folder check does: the same one line, and nothing
    changed."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    calls = len(tool_calls(env["log"]))
    for cwd in (bind_mount(prev), bind_mount(out) / "previous"):  # previous/ itself, or the folder above it
        monkeypatch.chdir(cwd)
        rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
        assert rc == 2 and err.splitlines()[-1] == (
            f"dpupose: error: the current folder {cwd} is {prev}, which this rebuild replaces with the set it takes "
            f"down: cd out of it (cd {out}) and build again; nothing was changed"
        )
    assert len(tool_calls(env["log"])) == calls
    assert published_bytes(out) == current and published_bytes(prev) == older
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]


def test_a_rebuild_from_a_shell_in_the_build_folder_above_previous_goes_ahead(capsys, env, monkeypatch):
    """Only a shell in previous/ (or below it) is refused: one in the build folder, which holds previous/ and is
    not replaced, rebuilds."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    calls = len(tool_calls(env["log"]))
    monkeypatch.chdir(out)
    rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) > calls  # it ran its steps
    assert published_bytes(out).keys() == current.keys() and published_bytes(prev).keys() == older.keys()


@pytest.mark.parametrize("kind", ["folder", "link"])
def test_previous_holding_a_folder_or_link_under_a_published_name_is_refused(capsys, env, monkeypatch, kind):
    """previous/ was checked for names only: a folder named dpu.bit there (a user's files under it) passed, and
    the rebuild removed previous/ whole, that folder with it; so did a link (the link only). Each entry must
    be a regular file, as a build puts there."""
    prev = env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    monkeypatch.delenv("FAKE_FAIL")
    assert build(capsys, env)[0] == 0  # published again; previous/ holds the first set
    (prev / "dpu.bit").unlink()
    mine = env["tmp"] / "mine.bit"
    mine.write_text("my own bitstream")
    if kind == "folder":
        (prev / "dpu.bit").mkdir()
        (prev / "dpu.bit" / "notes.txt").write_text("mine")
    else:
        (prev / "dpu.bit").symlink_to(mine)
    calls = len(tool_calls(env["log"]))
    rc, _, err = build(capsys, env, "--from", "link", "--force")
    what = "a folder" if kind == "folder" else f"a link to {mine}"  # named, as what_is_at names it
    assert rc == 2 and err.endswith(
        f"dpupose: error: {prev} holds dpu.bit ({what}), which no build put there, and a rebuild replaces "
        "previous/ whole: move it elsewhere\n"
    )
    assert len(tool_calls(env["log"])) == calls
    if kind == "folder":
        assert (prev / "dpu.bit" / "notes.txt").read_text() == "mine"
    else:
        assert (prev / "dpu.bit").is_symlink() and mine.read_text() == "my own bitstream"


@pytest.mark.parametrize("how", [(), ("--from", "collect")])
def test_a_rebuild_that_changes_nothing_keeps_previous(capsys, env, how):
    """collect runs in every build (it has no stamp), so a build with every tool step up to date (`make hw`
    run again) took the published set down into previous/ and published the same files again: previous/ then
    held the published set itself, and the set before it, the one to swap back to, was gone. A set that
    collect gathers again byte for byte stays published and previous/ as it was; a link output that differs
    is taken down into previous/ as before."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    calls = len(tool_calls(env["log"]))
    rc, stdout, err = build(capsys, env, *how, config=edited)
    assert rc == 0, err
    assert len(tool_calls(env["log"])) == calls  # no tool ran
    assert published_bytes(prev) == older
    assert {n: b for n, b in published_bytes(out).items() if n != "build_info.json"} == {
        n: b for n, b in current.items() if n != "build_info.json"
    }
    kept_line = f"the set published before it is kept in {prev} (until the next rebuild replaces it)"
    assert stdout.splitlines()[-1] == kept_line
    # The link's bitstream changed since (a link run by hand): collect gathers another set, and the published
    # one is kept in previous/ in place of the older, as for any rebuild.
    (bit,) = (out / "link").rglob("prj.runs/impl_1/*.bit")
    bit.write_bytes(bit.read_bytes() + b"\0")
    assert build(capsys, env, *how, config=edited)[0] == 0
    kept = published_bytes(prev)
    assert kept["dpu.bit"] == current["dpu.bit"] and kept["arch.json"] == current["arch.json"]
    assert published_bytes(out)["dpu.bit"] == current["dpu.bit"] + b"\0"


def test_a_read_only_previous_is_refused(capsys, env, monkeypatch):
    """A previous/ made read-only (to keep the set in it) was renamed aside all the same (a rename needs only
    the build folder writable), and its removal then failed unseen (ignore_errors), leaving each rebuild's
    older set hidden as .previous.old-PID-XXXXXXXX for good (for root, the set was replaced as if writable). It is
    refused before any tool runs."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    prev.chmod(0o555)
    try:
        calls = len(tool_calls(env["log"]))
        rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
        assert rc == 2 and err.endswith(
            f"dpupose: error: {prev} is read-only, and a rebuild replaces previous/ whole: make it writable "
            f"(chmod u+w {prev}), or move it elsewhere to keep it\n"
        )
        assert "nothing is published" not in err  # refused before the published set was taken down
        assert len(tool_calls(env["log"])) == calls
        assert published_bytes(prev) == older
        assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]
    finally:
        prev.chmod(0o755)
    rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
    assert rc == 0, err  # writable again: the rebuild keeps the published set in previous/
    assert published_bytes(prev)["arch.json"] != older["arch.json"]


@pytest.mark.parametrize("code", [errno.EBUSY, errno.EXDEV])
def test_a_previous_that_cannot_be_renamed_is_named_with_what_to_do(capsys, env, monkeypatch, code):
    """previous/ a mount point (another file system, a bind mount): renaming it aside fails (EBUSY; EXDEV
    where the two names are on different mounts), and the rebuild stopped with 'cannot use A -> B: Device or
    resource busy (check the path, its permissions and the free space)'. One line says why and what to do;
    nothing is taken down and no tool runs."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    older = published_bytes(out)
    edited = edited_config(env["tmp"])
    assert build(capsys, env, config=edited)[0] == 0
    current = published_bytes(out)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.fspath(src) == os.fspath(prev):  # moving previous/ aside
            raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    calls = len(tool_calls(env["log"]))
    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        rc, _, err = build(capsys, env, "--from", "link", "--force", config=edited)
    assert rc == 2 and err.splitlines()[-1] == (
        f"dpupose: error: {prev} could not be replaced ({os.strerror(code)}): a rebuild replaces previous/ whole "
        f"by renaming it within {out}, which a mount point (another file system, a bind mount) does not allow: "
        "unmount it, or copy its files elsewhere and remove it; nothing was taken down"
    )
    assert len(tool_calls(env["log"])) == calls
    assert published_bytes(out) == current and published_bytes(prev) == older
    assert not [p.name for p in out.iterdir() if p.name.startswith(".previous")]


def test_the_kept_set_is_on_disk_before_the_published_names_are_removed(capsys, env, monkeypatch):
    """atomic_dir flushed the kept files but not the folders' entries (the links in previous/, its rename into
    place) before the published names were removed: a power cut on a file system that does not write metadata
    in order could keep the removals and lose the rest, the set in neither place. previous/ and the build
    folder are flushed first."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    events = []
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def unlink(path, *args, **kwargs):
        events.append(("unlink", os.fspath(path)))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setenv("FAKE_FAIL", "link")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        m.setattr(os, "unlink", unlink)
        assert build(capsys, env, "--from", "link", "--force")[0] == 2
    first_removal = events.index(("unlink", str(out / "dpu.bit")))
    assert ("fsync", os.path.realpath(prev)) in events[:first_removal]
    assert ("fsync", os.path.realpath(out)) in events[:first_removal]
    assert sorted(os.listdir(prev)) == sorted(PUBLISHED)


def test_keeping_the_published_set_leaves_its_files_modes_alone(capsys, env, monkeypatch):
    """The kept files are hard links to the published ones, and atomic_dir set every file in its new folder
    to 0666 less the umask (mkstemp's files are owner-only): the published files' own mode was changed (one
    made read-only writable again), and where another user owns them (a shared build folder) the chmod
    failed and no rebuild could run. A hard-linked file keeps its mode."""
    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    (out / "dpu.bit").chmod(0o400)
    (out / "dpu.xclbin").chmod(0o640)
    hwh_mode = (out / "dpu.hwh").stat().st_mode & 0o777
    umask = os.umask(0o022)
    try:
        monkeypatch.setenv("FAKE_FAIL", "link")
        assert build(capsys, env, "--from", "link", "--force")[0] == 2
    finally:
        os.umask(umask)
    assert (prev / "dpu.bit").stat().st_mode & 0o777 == 0o400
    assert (prev / "dpu.xclbin").stat().st_mode & 0o777 == 0o640
    assert (prev / "dpu.hwh").stat().st_mode & 0o777 == hwh_mode  # as published


def test_a_published_file_that_cannot_be_read_is_judged_by_its_size(capsys, env, monkeypatch):
    """A published file this user may not read (its mode 0 or another owner's, as the size can still be read)
    counted as not the one build_info.json records once sets were judged by sha256: the rebuild removed the
    set instead of keeping it in previous/. Its size is what can be told, as before the sha256 was recorded."""
    from dpupose.hwbuild import flow

    out, prev = env["out"], env["out"] / "previous"
    assert build(capsys, env)[0] == 0
    first = published_bytes(out)
    real_sha256 = flow.sha256_file

    def sha256_file(path):
        if os.path.basename(path) == "dpu.bit":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_sha256(path)

    monkeypatch.setattr(flow, "sha256_file", sha256_file)
    monkeypatch.setenv("FAKE_FAIL", "link")
    assert build(capsys, env, "--from", "link", "--force")[0] == 2
    assert published_bytes(prev) == first


def test_of_several_kept_sets_left_hidden_the_newest_is_the_one_shown(tmp_path):
    # two kill -9s in a row can leave two .previous.old-PID-XXXXXXXX folders (never one swap): the one whose
    # build_info.json was written last is the set the last rebuild kept; none is shown where previous/ is in
    # place, and a folder of another form (an earlier version's .previous.old-PID, a user's) is none of them
    from dpupose.hwbuild.flow import stopped_swap
    from dpupose.hwbuild.layout import BuildPaths

    paths = BuildPaths(tmp_path, tmp_path / "tcl")
    for name, when in ((".previous.old-9-aaaaaaaa", 2_000_000_000), (".previous.old-10-bbbbbbbb", 1_000_000_000)):
        (tmp_path / name).mkdir()
        info = tmp_path / name / "build_info.json"
        info.write_text("{}")
        os.utime(info, ns=(when, when))
    (tmp_path / ".previous.old-11-cccccccc").mkdir()  # no build_info.json: the oldest
    for name in (".previous.old-12", ".previous.old-2019-backup1", ".previous.old-13-dddddddd.x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "build_info.json").write_text("{}")  # the newest of all, but no such folder
    assert stopped_swap(paths) == tmp_path / ".previous.old-9-aaaaaaaa"
    (tmp_path / "previous").mkdir()
    assert stopped_swap(paths) is None
    for name in ("previous", ".previous.old-9-aaaaaaaa", ".previous.old-10-bbbbbbbb", ".previous.old-11-cccccccc"):
        shutil.rmtree(tmp_path / name)
    assert stopped_swap(paths) is None  # only the others: no kept set


def test_a_failure_is_recorded_with_the_first_line_of_its_error(tmp_path):
    # an error's first line says what failed (the rest: its details, a tool's output); a long one is cut at 200
    from types import SimpleNamespace

    from dpupose.hwbuild.flow import _record_failure
    from dpupose.hwbuild.layout import BuildPaths

    ctx = SimpleNamespace(paths=BuildPaths(tmp_path, tmp_path / "tcl"))
    (tmp_path / "stamps").mkdir()
    error = RuntimeError("timing not met: WNS -0.2 ns:\n  path a -> b\n  see the report")
    _record_failure(ctx, SimpleNamespace(name="report"), error, None)
    record = json.loads((tmp_path / "stamps" / "report.failed.json").read_text())
    assert (record["outcome"], record["error"], record["log"]) == ("failed", "timing not met: WNS -0.2 ns", None)
    _record_failure(ctx, SimpleNamespace(name="collect"), ValueError("x" * 300 + "\nmore"), None)
    record = json.loads((tmp_path / "stamps" / "collect.failed.json").read_text())
    assert record["error"] == "x" * 197 + "..."
    _record_failure(ctx, SimpleNamespace(name="collect"), KeyboardInterrupt(), None)
    record = json.loads((tmp_path / "stamps" / "collect.failed.json").read_text())
    assert (record["outcome"], record["error"]) == ("interrupted", "")


def test_commands_refuse_a_board_that_is_unknown_or_not_the_configuration_s(capsys, env):
    """hw commands did not look at --board: an unknown board, or another board than the configuration's, printed
    the configuration's commands with exit status 0, where check, build and status refuse it."""
    for board, message in (
        ("bogus", "unknown board 'bogus'; known boards: kv260, ultra96v2, zcu102, zcu104"),
        ("zcu104", f"configuration {CONFIG} is for board ultra96v2, not zcu104; pick a configuration for zcu104"),
    ):
        assert cli.main(["hw", "commands", "--config", CONFIG, "--board", board, "--out", str(env["out"])]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"dpupose: error: {message}") and err.count("\n") == 1
    assert cli.main(["hw", "commands", "--config", CONFIG, "--board", "ultra96v2", "--out", str(env["out"])]) == 0
    assert "vivado -mode batch" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["gen", "logs", "stamps"])
def test_a_file_where_a_build_keeps_a_folder_is_refused_before_anything_is_written(capsys, env, name):
    """A file at stamps/ (logs/, gen/) stopped the build after its first step, at its first write there ('cannot
    use .../stamps/generate.json: Not a directory'), with gen/ already written into the user's folder."""
    import os

    holds = {"gen": "generated files", "logs": "tool logs", "stamps": "step records"}[name]
    env["out"].mkdir(parents=True)
    (env["out"] / "notes.txt").write_text("keep")
    for kind in ("file", "link"):
        if kind == "file":
            (env["out"] / name).write_text("mine")
        else:
            (env["out"] / name).unlink()
            (env["out"] / name).symlink_to("nowhere")
        rc, _, err = build(capsys, env, "--to", "generate")
        what = "a file" if kind == "file" else "a symbolic link that leads nowhere (to nowhere)"
        assert rc == 2 and err.splitlines()[-1] == (
            f"dpupose: error: {env['out'] / name} is {what}, where a build keeps its {holds} in a folder: move it "
            "elsewhere, or choose another --out"
        )
        assert sorted(os.listdir(env["out"])) == sorted(["notes.txt", name])


def test_a_failed_tools_log_linked_to_a_pipe_is_not_read_back(tmp_path):
    """A step's log that is a link to /dev/stdout (the tool watched as it runs) with stdout a pipe, or to a FIFO:
    the tool's output goes into it, and its failure quoted 'the end of' the log by reading it back, which on a
    pipe waits for every writer to close it, run_tool's own among them: the build hung. Only a regular file's
    end is quoted. Run in a child process, which the test ends if it hangs."""
    import subprocess
    import sys
    from pathlib import Path

    child = f"""
import os, threading
from pathlib import Path
from dpupose.hwbuild.runner import ToolFailed, run_tool

reader, writer = os.pipe()
got = []
threading.Thread(target=lambda: got.append(os.read(reader, 1000)), daemon=True).start()
log = Path({str(tmp_path)!r}) / "logs" / "link.log"
log.parent.mkdir()
log.symlink_to(f"/proc/self/fd/{{writer}}")
try:
    run_tool(["sh", "-c", "echo tool-said-this; exit 3"], cwd=log.parent.parent / "link", log_file=log, expect=[])
except ToolFailed as exc:
    print("refused:", exc)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parent.parent)}
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    log = tmp_path / "logs" / "link.log"
    assert proc.stdout == f"refused: sh failed with exit status 3; its output went to {log}\n"


def test_a_failed_tools_log_that_cannot_be_read_back_is_still_named(tmp_path, monkeypatch):
    """The refusal says where the tool's output went even when the log cannot be read back (no permission, an
    I/O error): 'the end of LOG:' with nothing after it, the log still named."""
    from pathlib import Path

    from dpupose.hwbuild.runner import ToolFailed, run_tool

    log = tmp_path / "logs" / "tool.log"

    def unreadable(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(ToolFailed) as exc:
        run_tool(["sh", "-c", "echo tool-said-this; exit 3"], cwd=tmp_path, log_file=log, expect=[])
    assert str(exc.value) == f"sh failed with exit status 3; the end of {log}:\n"
    monkeypatch.undo()
    assert log.read_text().strip().endswith("tool-said-this")


def test_a_wrong_kind_of_entry_at_a_build_folder_s_name_is_named_alike_everywhere(capsys, env):
    """hw build's refusals of what is at a folder's name said 'is not a folder' at trd/, link/ and previous/ (a
    FIFO, a device and a file alike) and 'is a file' at gen/, and hw status 'is a file' of a FIFO at previous/;
    each names what is there now, in the same words (fsio.what_is_at)."""
    assert build(capsys, env)[0] == 0
    out = env["out"]
    calls = len(tool_calls(env["log"]))
    for name, said in [
        ("trd", f"{out / 'trd'} is a FIFO, and the TRD archive {env['trd']} is unpacked in its place: move it "
                "elsewhere"),
        ("link", f"{out / 'link'} is a FIFO, and a build removes link/ whole before it makes it again: move it "
                 "elsewhere"),
        ("logs", f"{out / 'logs'} is a FIFO, where a build keeps its tool logs in a folder: move it elsewhere, or "
                 "choose another --out"),
        ("previous", f"{out / 'previous'} is a FIFO, not a folder a build made, and a rebuild keeps the published "
                     "files there: move it elsewhere"),
    ]:  # fmt: skip
        kept = env["tmp"] / f"kept-{name}"
        if os.path.lexists(out / name):
            (out / name).rename(kept)
        os.mkfifo(out / name)
        rc, _, err = build(capsys, env, "--force")
        assert rc == 2 and err.splitlines()[-1] == f"dpupose: error: {said}"
        assert (out / name).is_fifo() and len(tool_calls(env["log"])) == calls
        if name == "previous":
            rc, lines = status(capsys, env)
            assert rc == 0 and lines[-1] == (
                f"previous: {out / 'previous'} is a FIFO, not a folder a build made; a build refuses to run until it "
                "is moved elsewhere"
            )
        (out / name).unlink()
        if os.path.lexists(kept):
            kept.rename(out / name)
    # --out itself: refused as the command line is read (output_dir), and by check_build_folder where it is
    # reached otherwise (the build's API), in the same words as the other commands' output folders
    # (check_replaceable); they read 'is a FIFO; give a folder', '..., not a folder: choose' and '...; choose'.
    import argparse

    from dpupose.commands.argtypes import output_dir
    from dpupose.errors import UsageError
    from dpupose.fsio import check_replaceable
    from dpupose.hwbuild.flow import check_build_folder
    from dpupose.hwbuild.layout import BuildPaths

    fifo = env["tmp"] / "fifo-out"
    os.mkfifo(fifo)
    with pytest.raises(UsageError) as built:
        check_build_folder(BuildPaths.for_config(CONFIG, fifo))
    with pytest.raises(UsageError) as replaced:
        check_replaceable(fifo, "mark.json", [], "an earlier result")
    with pytest.raises(argparse.ArgumentTypeError) as given:
        output_dir(str(fifo))
    assert str(built.value) == str(replaced.value) == f"{fifo} is a FIFO, not a folder; choose another --out"
    assert str(given.value) == f"{fifo} is a FIFO, not a folder; give a folder"


def test_status_says_which_configuration_the_published_set_was_built_from(capsys, env, monkeypatch):
    """hw status read whatever build was in build/hw/<name>/, which a .toml of one's own named like a shipped
    configuration shares with it (hw check and build warn of that): it reported the shipped one's set as the
    file's, timing met, exit 0. It warns as they do, and says the set was built from another configuration,
    naming what differs."""
    from pathlib import Path

    from dpupose.dpu.paths import configs_dir

    monkeypatch.chdir(env["tmp"])
    env["out"] = Path("build") / "hw" / CONFIG  # where both build without --out
    assert build(capsys, env)[0] == 0
    (env["tmp"] / "my").mkdir()
    twin = Path("my") / f"{CONFIG}.toml"
    shipped = (configs_dir() / f"{CONFIG}.toml").read_text()
    assert "clock_mhz = 200 " in shipped
    twin.write_text(shipped.replace("clock_mhz = 200 ", "clock_mhz = 150 "))
    repos = ["--trd", str(env["trd"]), "--board-repo", str(env["repo"])]
    rc = cli.main(["hw", "status", "--config", str(twin), *repos])
    out, err = capsys.readouterr()
    assert f"{twin} is named like the shipped configuration {CONFIG}" in err
    wns = json.loads((env["out"] / "build_info.json").read_text())["timing"]["wns_ns"]
    assert rc == 1 and out.splitlines()[-1] == (
        f"published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met, WNS {wns} ns), but built from another "
        f"configuration {CONFIG} (clock_mhz 200 there, 150 in yours), not from {twin}: rebuild with `dpupose hw "
        f"build --config {twin}` for yours (or give --out another folder to keep both)"
    )
    # The shipped name, and a twin of the same values, read the set as theirs.
    twin.write_text(shipped)
    for config in (CONFIG, str(twin)):
        rc = cli.main(["hw", "status", "--config", config, *repos])
        assert rc == 0 and capsys.readouterr().out.splitlines()[-1].startswith("published: dpu.bit, dpu.hwh")


def test_status_names_up_to_four_values_of_another_configuration_or_its_fingerprint(capsys, env):
    """Where the published set's build_info.json records another configuration, status names at most four of the
    values that differ (a key the record lacks among them, as null) and how many more; where it records none (an
    older build_info.json), or something that is not a configuration, the fingerprints are compared."""
    assert build(capsys, env)[0] == 0
    info_path = env["out"] / "build_info.json"
    info = json.loads(info_path.read_text())
    status = ["hw", "status", "--config", CONFIG, "--out", str(env["out"])]
    status += ["--trd", str(env["trd"]), "--board-repo", str(env["repo"])]

    def published(edited) -> tuple[int, str]:
        info_path.write_text(json.dumps(edited))
        rc = cli.main(status)
        return rc, capsys.readouterr().out.splitlines()[-1]

    recorded = dict(info["configuration"])
    assert (recorded["arch"], recorded["clock_mhz"], recorded["cores"]) == ("B1600", 200, 1)
    del recorded["alu_activations"]
    recorded.update(arch="B4096", clock_mhz=300, cores=2, low_power=True, softmax=True)
    rc, line = published({**info, "configuration": recorded})
    assert rc == 1
    assert (
        f'but built from another configuration {CONFIG} (alu_activations null there, "relu_relu6" in yours; arch '
        f'"B4096" there, "B1600" in yours; clock_mhz 300 there, 200 in yours; cores 2 there, 1 in yours and 2 '
        f"more), not from {CONFIG}: rebuild with"
    ) in line
    older = {k: v for k, v in info.items() if k != "configuration"}
    rc, line = published({**older, "fingerprint": "0x1"})
    assert rc == 1
    assert (
        f"but built from another configuration {CONFIG} (fingerprint 0x1 there, {info['fingerprint']} in yours)" in line
    )
    wns = info["timing"]["wns_ns"]
    for same in (older, {**info, "configuration": CONFIG}):  # the same fingerprint: the set taken as ours
        rc, line = published(same)
        assert (rc, line) == (0, f"published: dpu.bit, dpu.hwh, dpu.xclbin, arch.json (timing met, WNS {wns} ns)")


def status_then_build(capsys, env, config):
    """`hw status --config config`'s step lines, the files of the build folder (to show status wrote nothing),
    then the tool steps the next `hw build --config config` runs and the link's inputs before and after it."""
    rc, lines = status(capsys, env, config=config)
    assert rc in (0, 1), lines
    files = {p: p.read_bytes() for p in env["out"].rglob("*") if p.is_file()}
    xo = (env["out"] / "kernel" / "dpu.xo").read_bytes()
    before = len(steps_run(env))
    rc, _, err = build(capsys, env, config=config)
    assert rc == 0, err
    return lines[:3], files, steps_run(env)[before:], xo != (env["out"] / "kernel" / "dpu.xo").read_bytes()


def test_status_judges_the_steps_by_what_the_given_configuration_generates(capsys, env):
    """hw status compared the stamps with the files in gen/, generated from whichever configuration built there
    last: a .toml of one's own named like a shipped configuration but with another clock, sharing its folder,
    read 'up to date' for every step, and `hw build` with it then ran all three again. Each step reads as the
    next build judges it: out of date where the generated files it reads would change, and only those steps
    run again; status writes nothing in the build folder."""
    from dpupose.dpu.paths import configs_dir

    assert build(capsys, env)[0] == 0
    shipped = (configs_dir() / f"{CONFIG}.toml").read_text()
    twin = env["tmp"] / "my" / f"{CONFIG}.toml"
    twin.parent.mkdir()
    twin.write_text(shipped.replace("clock_mhz = 200 ", "clock_mhz = 150 "))
    # Which generated files the other clock changes, by a build of the twin into a folder of its own.
    elsewhere = env["tmp"] / "elsewhere"
    rc = cli.main(["hw", "build", "--config", str(twin), "--out", str(elsewhere), "--to", "generate"])
    assert rc == 0
    capsys.readouterr()
    differ = [
        n
        for n in ("params.tcl", "platform.xdc", "dpu_conf.vh", "prj_config")
        if (env["out"] / "gen" / n).read_bytes() != (elsewhere / "gen" / n).read_bytes()
    ]
    assert "params.tcl" in differ and "prj_config" in differ  # the platform's clocks, v++'s clock ids
    reads = {
        "platform": ("params.tcl", "platform.xdc"),
        "kernel": ("params.tcl", "dpu_conf.vh"),
        "link": ("prj_config",),
    }
    expected = []
    for step, names in reads.items():
        changed = ", ".join(f"gen/{n}" for n in names if n in differ)
        expected.append(f"{step:9s} out of date (the configuration differs: {changed} would change)")
    out = env["out"]
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    lines, seen, ran, _ = status_then_build(capsys, env, str(twin))
    assert lines == expected
    assert seen == files  # status wrote nothing
    assert ran == ["platform", "kernel", "link"]
    # Built with it, the twin's steps are up to date, and the shipped configuration's are out of date in turn.
    lines, _, ran, _ = status_then_build(capsys, env, str(twin))
    assert lines == [f"{s:9s} up to date" for s in reads] and ran == []
    lines, _, ran, _ = status_then_build(capsys, env, CONFIG)
    assert [line.split(" (")[0] for line in lines] == [f"{s:9s} out of date" for s in reads]
    assert ran == ["platform", "kernel", "link"]
    # The same configuration, by its shipped name or a twin of the same values: all up to date, and no tool runs.
    twin.write_text(shipped)
    for config in (CONFIG, str(twin)):
        lines, _, ran, _ = status_then_build(capsys, env, config)
        assert lines == [f"{s:9s} up to date" for s in reads] and ran == []


def test_status_of_an_edited_shipped_configuration_says_what_the_build_runs_again(capsys, env, monkeypatch):
    """The shipped .toml edited after the build (a DPU option changed): status read gen/ as the build left it,
    'up to date' for every step. The kernel (dpu_conf.vh) and the link (prj_config, which records the fingerprint)
    are out of date, the platform is not, as the build runs them."""
    hw = env["tmp"] / "hw"
    shutil.copytree(tcl_dir().parent, hw)
    monkeypatch.setenv("DPUPOSE_HW_DIR", str(hw))
    assert build(capsys, env)[0] == 0
    toml = hw / "dpu" / "configs" / f"{CONFIG}.toml"
    text = toml.read_text()
    assert "channel_augmentation = true\n" in text
    toml.write_text(text.replace("channel_augmentation = true\n", "channel_augmentation = false\n"))
    lines, _, ran, new_xo = status_then_build(capsys, env, CONFIG)
    assert lines == [
        "platform  up to date",
        "kernel    out of date (the configuration differs: gen/dpu_conf.vh would change)",
        "link      out of date (the configuration differs: gen/prj_config would change)",
    ]
    assert new_xo and ran == ["kernel", "link"]  # the stand-in's dpu.xo carries the fingerprint: a new one
    lines, _, ran, _ = status_then_build(capsys, env, CONFIG)
    assert lines == [f"{s:9s} up to date" for s in ("platform", "kernel", "link")] and ran == []


def test_status_does_not_unpack_the_trd_into_the_build_folder(capsys, env):
    """The link's stamp hashes the TRD's post-link script, read from the archive unpacked in trd/: with trd/
    removed (to save space, or a build folder copied without it), `hw status` unpacked the archive there again.
    It unpacks it in a temporary folder, and reads the link as the next build does (up to date: no tool runs)."""
    assert build(capsys, env)[0] == 0
    shutil.rmtree(env["out"] / "trd")
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[:3] == [f"{s:9s} up to date" for s in ("platform", "kernel", "link")]
    assert not (env["out"] / "trd").exists()
    before = len(steps_run(env))
    assert build(capsys, env)[0] == 0 and steps_run(env)[before:] == []


def test_ctrl_c_anywhere_in_status_leaves_no_temporary_folder(capsys, env, monkeypatch):
    """A sweep (signal_sweep): Ctrl-C at each point of status's temporary folder's creation and removal (and of
    the TRD unpacked there) in turn. tempfile.TemporaryDirectory left the folder, the generated files and the
    TRD's tree, in TMPDIR where the signal came inside mkdtemp, after it made it, or during its removal, and one
    just after rmtree closed a folder became an OSError (EBADF). The signal is not lost, and the build folder is
    untouched byte for byte. (SIGTERM, which the CLI turns into Terminated, takes the same path.)"""
    from signal_sweep import signal_sweep

    from dpupose.hwbuild import flow

    def tree(folder):
        return {str(p.relative_to(folder)): p.is_file() and p.read_bytes() for p in sorted(folder.rglob("*"))}

    assert build(capsys, env)[0] == 0
    shutil.rmtree(env["out"] / "trd")  # so status unpacks the TRD in its temporary folder too
    before = tree(env["out"])
    temp = env["tmp"] / "TMPDIR"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    contexts, real = [], flow.step_status
    monkeypatch.setattr(flow, "step_status", lambda ctx: contexts.append(ctx) or real(ctx))
    rc, lines = status(capsys, env)
    assert rc == 0 and lines[:3] == [f"{s:9s} up to date" for s in ("platform", "kernel", "link")]
    removal = False
    for point in signal_sweep(signal.SIGINT, watched=("tempfile.py", "shutil.py")):
        interrupted = False
        try:
            with point.armed():
                assert real(contexts[0]) == dict.fromkeys(("platform", "kernel", "link"), "up to date")
        except KeyboardInterrupt:
            interrupted = True
        assert interrupted == point.sent, point  # a signal sent is not lost (nor made an OSError)
        assert os.listdir(temp) == [], point
        removal |= point.where.startswith("_rmtree")
    assert tree(env["out"]) == before  # nothing written in the build folder
    assert removal and point.n > 50  # the sweep went through the removal
