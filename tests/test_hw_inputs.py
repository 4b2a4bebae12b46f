"""The user's inputs (DPU TRD, board files) and tools (Vivado/v++ 2022.1, XRT): accepted, or refused with what to do."""

import json
import shutil
import tarfile

import pytest
from hwfakes import install_fake_tools, make_board_repo, make_trd_archive

from dpupose import cli
from dpupose.errors import ToolNotFoundError, UsageError
from dpupose.hwbuild.inputs import TRD_SKELETON, extract_trd, find_board_files, inspect_trd
from dpupose.hwbuild.platform import load_platform
from dpupose.hwbuild.tools import check_xrt, parse_vivado_version, parse_vpp_version, probe_vivado, probe_vpp

PFM = load_platform("ultra96v2")


def test_trd_archive_is_checked_without_unpacking_and_unpacked_only_where_asked(tmp_path):
    archive = make_trd_archive(tmp_path / "DPUCZDX8G.tar.gz", [*TRD_SKELETON, "app/model.xmodel"])
    info = inspect_trd(archive)
    assert info.archive and info.prefix == "DPUCZDX8G/" and info.ip_version == "4.0.0" and info.has_postlink
    assert not (tmp_path / "DPUCZDX8G").exists()
    root = extract_trd(info, tmp_path / "out" / "trd")
    assert root == tmp_path / "out" / "trd"
    assert (root / "prj/Vitis/kernel_xml/dpu/kernel.xml").read_text() == "// prj/Vitis/kernel_xml/dpu/kernel.xml\n"
    assert not (root / "app").exists()  # only dpu_ip/ and prj/Vitis/
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["trd"]  # no temporary left behind
    assert extract_trd(info, root) == root  # already there: not unpacked again
    folder = inspect_trd(root)
    assert not folder.archive and folder.prefix == "" and set(folder.names) >= set(TRD_SKELETON)


def test_ctrl_c_while_the_trd_is_unpacked_leaves_it_whole_or_absent(tmp_path):
    """A sweep (signal_sweep): Ctrl-C at each point of unpacking the TRD over an earlier one in turn. A signal
    inside mkdtemp left its folder beside the TRD. The folder holds the whole new tree with its .complete
    marker, or what is left of the earlier one with the earlier marker (unpacked again next time), and
    nothing is beside it."""
    import signal

    from signal_sweep import signal_sweep

    archive = make_trd_archive(tmp_path / "DPUCZDX8G.tar.gz", TRD_SKELETON)
    info = inspect_trd(archive)
    out = tmp_path / "out"
    whole = {str(p.relative_to(out / "trd")) for p in extract_trd(info, out / "trd").rglob("*")}
    # The unpacking (inputs.py), its temporary and the removal of the earlier tree (shutil.rmtree).
    for point in signal_sweep(signal.SIGINT, watched=("inputs.py", "tempfile.py", "shutil.py")):
        (out / "trd" / ".complete").write_text("an earlier archive's digest")  # so it is unpacked again
        interrupted = False
        try:
            with point.armed():
                extract_trd(info, out / "trd")
        except KeyboardInterrupt:
            interrupted = True
        except OSError as exc:  # Python's rmtree closes a folder again when a signal follows its close: EBADF
            assert point.sent and isinstance(exc.__context__, KeyboardInterrupt), point
            interrupted = True
        assert interrupted == point.sent, point  # a signal sent is not lost
        assert [p.name for p in out.iterdir()] in ([], ["trd"]), point
        marker = out / "trd" / ".complete"
        if marker.exists() and marker.read_text() == info.digest():
            assert {str(p.relative_to(out / "trd")) for p in (out / "trd").rglob("*")} == whole, point
        extract_trd(info, out / "trd")  # the next build finds it or unpacks it again
        assert {str(p.relative_to(out / "trd")) for p in (out / "trd").rglob("*")} == whole, point
    assert point.n > 20


def test_trd_problems_say_what_to_fetch(tmp_path):
    with pytest.raises(UsageError, match="DPU_TRD is not set: download the Vitis AI 2.5 DPU TRD"):
        inspect_trd(None)
    not_tar = tmp_path / "x.tar.gz"
    not_tar.write_text("not a tar")
    with pytest.raises(UsageError, match="is not a readable tar archive"):
        inspect_trd(not_tar)
    partial = make_trd_archive(tmp_path / "p.tar.gz", [n for n in TRD_SKELETON if "ttcl" not in n])
    with pytest.raises(UsageError, match=r"lacks dpu_ip/DPUCZDX8G_v\*/ttcl/\*_json.ttcl"):
        inspect_trd(partial)
    other = make_trd_archive(tmp_path / "o.tar.gz", ["README.md"])
    with pytest.raises(UsageError, match="no dpu_ip/ folder"):
        inspect_trd(other)


def test_trd_archive_with_unsafe_paths_is_not_extracted(tmp_path):
    archive = make_trd_archive(tmp_path / "t.tar.gz", TRD_SKELETON)
    with tarfile.open(archive) as good, tarfile.open(tmp_path / "evil.tar", "w") as tar:
        for member in good.getmembers():
            tar.addfile(member, good.extractfile(member))
        tar.addfile(tarfile.TarInfo("DPUCZDX8G/dpu_ip/../../escaped"))
    info = inspect_trd(tmp_path / "evil.tar")
    with pytest.raises(UsageError, match="unsafe member"):
        extract_trd(info, tmp_path / "trd")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "trd").exists()


def test_board_files_pinned_version_is_found(tmp_path):
    repo = make_board_repo(tmp_path / "bdf", "1.2")
    make_board_repo(tmp_path / "bdf", "1.3", vendor="Avnet-tria")
    found = find_board_files(repo, PFM)
    assert found.version == "1.2" and found.board_xml == repo / "ultra96v2/1.2/board.xml"


def test_board_files_problems_say_where_to_get_them(tmp_path):
    with pytest.raises(UsageError, match="BOARD_REPO is not set.*github.com/Avnet/bdf"):
        find_board_files(None, PFM)
    with pytest.raises(UsageError, match="no such folder"):
        find_board_files(tmp_path / "missing", PFM)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no ultra96v2 board.xml"):
        find_board_files(tmp_path / "empty", PFM)
    make_board_repo(tmp_path / "old", "1.0")
    with pytest.raises(UsageError, match=r"board files 1.0 \(vendor avnet.com.*not the pinned ultra96v2 1.2"):
        find_board_files(tmp_path / "old", PFM)


def test_tool_version_banners_are_parsed():
    assert parse_vivado_version("Vivado v2022.1 (64-bit)\nSW Build 3526262 on Mon Apr 18 2022") == "2022.1"
    assert parse_vivado_version("Vivado v2022.1.2 (64-bit)") == "2022.1.2"
    assert parse_vivado_version("command not found") is None
    assert parse_vpp_version("****** v++ v2022.1 (64-bit)\n  **** SW Build 3524075") == "2022.1"


def test_tools_are_probed_and_a_wrong_release_is_refused(tmp_path, monkeypatch):
    install_fake_tools(tmp_path / "bin", monkeypatch)
    vivado = probe_vivado()
    assert vivado.version == "2022.1" and vivado.banner == "Vivado v2022.1 (64-bit)"
    assert probe_vpp().banner == "v++ v2022.1 (64-bit)"
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "Vivado v2022.2 (64-bit)")
    with pytest.raises(ToolNotFoundError, match=r"release 2022.2 .*needs 2022.1.*Vitis/2022.1/settings64.sh"):
        probe_vivado()
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "Vivado v2022.1.1 (64-bit)")
    assert probe_vivado().version == "2022.1.1"  # a patch release of 2022.1 is 2022.1
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ToolNotFoundError, match="vivado is not on PATH: install Vivado 2022.1"):
        probe_vivado()
    monkeypatch.delenv("XILINX_XRT")
    with pytest.raises(ToolNotFoundError, match="XILINX_XRT is not set.*setup.sh"):
        check_xrt()


@pytest.fixture
def only_hw_command(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("hw",))


def test_hw_check_with_nothing_installed_lists_what_to_install(capsys, tmp_path, monkeypatch, only_hw_command):
    """None of AMD's tools nor their inputs. The Tcl check runs the scripts on this Python's tkinter or on
    tclsh, whichever there is, and tclsh stays on PATH: a Python without tkinter (Debian's python3 without
    python3-tk, an ordinary user's `make setup`) failed here with the Tcl check's sixth problem."""
    from dpupose.hwbuild import standin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if shutil.which("tclsh"):
        (bin_dir / "tclsh").symlink_to(shutil.which("tclsh"))
    monkeypatch.setenv("PATH", str(bin_dir))
    try:
        standin.tcl_engine()
    except ToolNotFoundError:
        pytest.skip("needs a Tcl interpreter: tclsh or a Python with tkinter")
    for var in ("XILINX_XRT", "DPU_TRD", "BOARD_REPO"):
        monkeypatch.delenv(var, raising=False)
    rc = cli.main(["hw", "check", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 1 and "5 problems: a build (`dpupose hw build`, `make hw`) would stop before starting Vivado." in out
    for topic, text in [
        ("trd", "DPU_TRD is not set"),
        ("vivado", "install Vivado 2022.1"),
        ("v++", "v++ comes with Vitis 2022.1"),
        ("xrt", "XILINX_XRT is not set"),
        ("board files", "BOARD_REPO is not set"),
    ]:
        assert any(line.split()[:1] == ["error"] and topic in line and text in line for line in out.splitlines()), topic
    assert "ok    tcl          platform.tcl under the Vivado stand-in" in out
    # What to pass is said in the command's own options (make's variables beside them), with where to download.
    trd = next(line for line in out.splitlines() if line.split()[:2] == ["error", "trd"])
    assert "--trd /path/to/DPUCZDX8G.tar.gz" in trd and "DPU_TRD= with make" in trd
    assert "https://www.xilinx.com/bin/public/openDownload?filename=DPUCZDX8G.tar.gz" in trd
    board = next(line for line in out.splitlines() if line.split()[:3] == ["error", "board", "files"])
    assert "git clone --branch 2023.2 https://github.com/Avnet/bdf" in board
    assert "--board-repo /path/to/it" in board and "BOARD_REPO= with make" in board
    # --json fails the same way: the findings as JSON, exit 1.
    rc = cli.main(["hw", "check", "--config", "u96v2-b1600-pynq", "--out", str(tmp_path / "b"), "--json"])
    findings = json.loads(capsys.readouterr().out)
    assert rc == 1 and {f["topic"] for f in findings if f["level"] == "error"} == {
        "trd",
        "vivado",
        "v++",
        "xrt",
        "board files",
    }
    assert not (tmp_path / "b").exists()


def test_hw_check_passes_with_everything_in_place(capsys, tmp_path, monkeypatch, only_hw_command):
    install_fake_tools(tmp_path / "bin", monkeypatch)
    trd = make_trd_archive(tmp_path / "DPUCZDX8G.tar.gz", TRD_SKELETON)
    monkeypatch.setenv("DPU_TRD", str(trd))
    monkeypatch.setenv("BOARD_REPO", str(make_board_repo(tmp_path / "bdf")))
    rc = cli.main(["hw", "check", "--config", "u96v2-b512", "--json"])
    findings = json.loads(capsys.readouterr().out)
    assert rc == 0, findings
    assert {f["topic"] for f in findings if f["level"] == "ok"} >= {
        "config", "fit", "clocks", "files", "tcl", "vivado", "v++", "xrt", "trd", "board files",
    }  # fmt: skip
    assert not [f for f in findings if f["level"] == "error"]


def test_a_trd_with_two_dpu_ip_folders_or_two_ip_versions_is_refused(tmp_path):
    two = make_trd_archive(tmp_path / "two.tar.gz", [f"{top}/{n}" for top in ("A", "B") for n in TRD_SKELETON], top="")
    with pytest.raises(UsageError, match=r"several dpu_ip/ folders \(A/, B/\); this is not the DPUCZDX8G TRD"):
        inspect_trd(two)
    names = [*TRD_SKELETON, "dpu_ip/DPUCZDX8G_v4_1_0/inc/arch_para.vh"]
    with pytest.raises(UsageError, match=r"expected one dpu_ip/DPUCZDX8G_v\* IP folder, found \['4_0_0', '4_1_0'\]"):
        inspect_trd(make_trd_archive(tmp_path / "versions.tar.gz", names))


def test_a_trd_folder_skips_hidden_folders_and_its_digest_only_the_trd_parts(tmp_path):
    root = tmp_path / "trd"
    for name in [*TRD_SKELETON, "README.md", *(f".backup/{n}" for n in TRD_SKELETON)]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"// {name}\n")
    info = inspect_trd(root)  # .backup/dpu_ip/ would be a second dpu_ip/ folder
    assert info.prefix == "" and not any(n.startswith(".backup") for n in info.names)
    digest = info.digest()
    (root / "README.md").write_text("edited\n")  # not a file the build reads: the kernel stays up to date
    assert inspect_trd(root).digest() == digest
    (root / "dpu_ip/Vitis/dpu/hdl/DPUCZDX8G.v").write_text("// edited\n")
    assert inspect_trd(root).digest() != digest


def test_board_files_are_found_five_folders_deep_of_the_pinned_vendor_with_a_board_root(tmp_path):
    xml = make_board_repo(tmp_path / "deep" / "a" / "b" / "c").joinpath("ultra96v2/1.2/board.xml")
    assert find_board_files(tmp_path / "deep", PFM).board_xml == xml  # in a folder five below the repository
    make_board_repo(tmp_path / "deeper" / "a" / "b" / "c" / "d")
    with pytest.raises(UsageError, match="holds no ultra96v2 board.xml"):
        find_board_files(tmp_path / "deeper", PFM)
    make_board_repo(tmp_path / "tria", "1.2", vendor="Avnet-tria")
    with pytest.raises(
        UsageError, match=r"1.2 \(vendor Avnet-tria, .*\) but not the pinned ultra96v2 1.2 \(vendor avnet"
    ):
        find_board_files(tmp_path / "tria", PFM)
    part = make_board_repo(tmp_path / "part").joinpath("ultra96v2/1.2/board.xml")
    part.write_text(part.read_text().replace("<board ", "<part ").replace("</board>", "</part>"))
    with pytest.raises(UsageError, match="holds no ultra96v2 board.xml"):
        find_board_files(tmp_path / "part", PFM)


def test_release_2022_10_is_not_2022_1_and_xrt_must_be_a_folder(tmp_path, monkeypatch):
    install_fake_tools(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "Vivado v2022.10 (64-bit)")
    with pytest.raises(ToolNotFoundError, match=r"release 2022.10 .*needs 2022.1"):
        probe_vivado()
    (tmp_path / "xrt").write_text("not a folder")
    monkeypatch.setenv("XILINX_XRT", str(tmp_path / "xrt"))
    with pytest.raises(ToolNotFoundError, match=r"XILINX_XRT=.*xrt is a file, not a folder: install XRT 2022.1"):
        check_xrt()
    monkeypatch.setenv("XILINX_XRT", str(tmp_path / "gone"))  # nothing there: not said to be 'not a folder'
    with pytest.raises(ToolNotFoundError, match=r"XILINX_XRT=.*gone: no such folder: install XRT 2022.1"):
        check_xrt()


def test_an_input_folder_of_the_wrong_kind_is_named_for_what_it_is(tmp_path):
    # BOARD_REPO of a file was 'no such folder', DPU_TRD of a FIFO 'no such file or folder', though both are
    # there: each names what is there, as the build folder's refusals do (fsio.what_is_at)
    import os

    (tmp_path / "bdf").write_text("notes")
    with pytest.raises(UsageError, match=r"^BOARD_REPO=\S*bdf is a file, not a folder; get them from "):
        find_board_files(tmp_path / "bdf", PFM)
    with pytest.raises(UsageError, match=r"^BOARD_REPO=\S*gone: no such folder; get them from "):
        find_board_files(tmp_path / "gone", PFM)
    os.mkfifo(tmp_path / "trd.tar.gz")
    with pytest.raises(UsageError, match=r"^DPU_TRD=\S*trd\.tar\.gz is a FIFO, not a file or folder: download "):
        inspect_trd(tmp_path / "trd.tar.gz")
    with pytest.raises(UsageError, match=r"^DPU_TRD=\S*gone: no such file or folder: download "):
        inspect_trd(tmp_path / "gone")
    # the other kinds each input can meet: a link that leads nowhere is there (the user sees it), not 'no such'
    (tmp_path / "dangling").symlink_to("nothing/here")
    nowhere = r"dangling is a symbolic link that leads nowhere \(to nothing/here\), not a "
    with pytest.raises(UsageError, match=rf"^DPU_TRD=\S*{nowhere}file or "):
        inspect_trd(tmp_path / "dangling")
    with pytest.raises(UsageError, match=rf"^BOARD_REPO=\S*{nowhere}folder; "):
        find_board_files(tmp_path / "dangling", PFM)
    with pytest.raises(UsageError, match=r"^BOARD_REPO=\S*trd\.tar\.gz is a FIFO, not a folder; get them from "):
        find_board_files(tmp_path / "trd.tar.gz", PFM)


def test_check_refuses_what_the_2_5_trd_cannot_build_and_names_a_missing_platform_clock_once(tmp_path):
    from dpupose.hwbuild.check import BuildRequest, preflight

    for option, message in (
        ("save_argmax = true", "save_argmax needs DPUCZDX8G IP v4.1 (Vitis AI 3.0)"),
        ("softmax = true", "softmax = true: this flow packages only the DPUCZDX8G kernel"),
    ):
        path = tmp_path / "c.toml"
        path.write_text(f'arch = "B1152"\nclock_mhz = 200\n{option}\n')
        errors = [f.message for f in preflight(BuildRequest(str(path)), set()).errors]
        assert errors and errors[0].startswith(message), errors  # the configuration finding comes first
    path.write_text('arch = "B1152"\nclock_mhz = 250\n')  # 250/500 MHz: not in the Ultra96-V2 clock table
    findings = preflight(BuildRequest(str(path)), set()).findings
    assert any(f.topic == "clocks" and "no 250 MHz clock" in f.message for f in findings if f.level == "error")
    assert not any(f.message.startswith("platform-clock") for f in findings)  # the clocks error says it
    path.write_text('arch = "B1152"\nclock_mhz = 100\n')  # 100/200 MHz: in the table, not among the safe ones
    (clocks,) = [f for f in preflight(BuildRequest(str(path)), set()).findings if f.topic == "clocks"]
    assert (clocks.level, clocks.message) == (
        "warn",
        "100/200 MHz (platform clock ids 3/4) is not a DPU clock known to work on the Avnet Ultra96-V2",
    )


def test_check_warns_of_little_disk_for_a_link_alone_and_takes_a_trd_archive_from_any_folder(tmp_path, monkeypatch):
    from collections import namedtuple

    from dpupose.hwbuild import check
    from dpupose.hwbuild.check import BuildRequest, preflight

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(check.shutil, "disk_usage", lambda path: usage(0, 0, 10e9))
    trd = make_trd_archive(tmp_path / "my downloads" / "DPUCZDX8G.tar.gz", TRD_SKELETON)
    req = BuildRequest("u96v2-b1600-pynq", trd=str(trd), out=tmp_path / "b")
    pre = preflight(req, {"link"})
    disk = [f for f in pre.findings if f.topic == "disk"]
    assert [(f.level, f.message.split(" at ")[0]) for f in disk] == [("warn", "10 GB free")]
    assert not [f for f in pre.findings if f.topic == "paths"]  # v++ reads the archive's unpacked copy
    monkeypatch.setattr(check.shutil, "disk_usage", lambda path: usage(0, 0, 100e9))
    assert not [f for f in preflight(req, {"link"}).findings if f.topic == "disk"]


def test_a_tool_without_a_version_is_refused_with_its_banner_and_the_path_is_the_one_on_path(tmp_path, monkeypatch):
    """A vivado on PATH whose -version names no release (a wrapper script, another tool by that name) is refused
    naming where it is and what it said; one that does is recorded with its own path, and v++'s patch release
    is read as Vivado's is."""
    install_fake_tools(tmp_path / "bin", monkeypatch)
    vivado = tmp_path / "bin" / "vivado"
    assert probe_vivado().path == str(vivado) and probe_vpp().path == str(tmp_path / "bin" / "v++")
    monkeypatch.setenv("FAKE_VIVADO_BANNER", "** Vivado wrapper (64-bit) **")
    with pytest.raises(ToolNotFoundError) as info:
        probe_vivado()
    assert str(info.value).startswith(
        f"{vivado} did not report a version ('Vivado wrapper (64-bit)'); install Vivado 2022.1 (AMD Unified"
    )
    assert parse_vpp_version("****** v++ v2022.1.2 (64-bit)") == "2022.1.2"


def test_a_configuration_of_one_s_own_named_like_a_shipped_one_is_told_it_shares_its_build_folder(
    capsys, tmp_path, monkeypatch, only_hw_command
):
    """my/u96v2-b512.toml builds, without --out, into the shipped u96v2-b512's build/hw/u96v2-b512/: each build
    replaced the other's with no word. hw check and hw build (make hw) say so, naming both files."""
    from pathlib import Path

    from dpupose.dpu.paths import configs_dir
    from dpupose.hwbuild.check import BuildRequest, preflight

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my").mkdir()
    twin = tmp_path / "my" / "u96v2-b512.toml"
    twin.write_text((configs_dir() / "u96v2-b512.toml").read_text().replace("200", "150"))
    own = tmp_path / "my" / "b512-own.toml"
    own.write_text(twin.read_text())

    def shared(config, out=None):
        return [f for f in preflight(BuildRequest(config, out=out), set()).findings if f.topic == "out"]

    (finding,) = shared("my/u96v2-b512.toml")
    assert finding.level == "warn" and finding.message.startswith(
        "my/u96v2-b512.toml is named like the shipped configuration u96v2-b512 (hw/dpu/configs/u96v2-b512.toml): "
        "both build into build/hw/u96v2-b512/, so a build of one replaces the other's"
    )
    assert shared(str(twin), out=Path("build/hw/mine")) == []  # --out keeps them apart
    assert shared("u96v2-b512") == shared(str(configs_dir() / "u96v2-b512.toml")) == []  # the shipped file itself
    assert shared(str(own)) == []  # a name of its own: a folder of its own
    cli.main(["hw", "check", "--config", "my/u96v2-b512.toml"])
    out = capsys.readouterr().out
    assert "  warn  " in out and "my/u96v2-b512.toml is named like the shipped configuration u96v2-b512" in out


def test_the_shipped_file_given_another_way_is_not_its_own_twin_and_a_copy_s_twin_names_the_copy(tmp_path, monkeypatch):
    """The shipped u96v2-b512.toml given by a relative path from elsewhere, or through a link named like it,
    is the shipped configuration itself (its build folder is its own), not a twin; with $DPUPOSE_HW_DIR naming
    a copy of hw/, a twin is told of the copy's file, the one that builds into the same folder."""
    import os

    from dpupose.dpu.paths import HW_DIR_ENV, configs_dir, packaged_hw_dir
    from dpupose.hwbuild.check import BuildRequest, preflight

    def shared(config):
        return [f.message for f in preflight(BuildRequest(config), set()).findings if f.topic == "out"]

    monkeypatch.delenv(HW_DIR_ENV, raising=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    shipped = configs_dir() / "u96v2-b512.toml"
    assert shared(os.path.relpath(shipped)) == []
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "u96v2-b512.toml").symlink_to(shipped)
    assert shared(str(tmp_path / "link" / "u96v2-b512.toml")) == []
    mine = tmp_path / "myhw"
    shutil.copytree(packaged_hw_dir(), mine)
    monkeypatch.setenv(HW_DIR_ENV, str(mine))
    twin = tmp_path / "u96v2-b512.toml"
    twin.write_text(shipped.read_text().replace("200", "150"))
    (message,) = shared(str(twin))
    assert message.startswith(
        f"{twin} is named like the shipped configuration u96v2-b512 ({mine}/dpu/configs/u96v2-b512.toml): "
    )
