"""params.tcl, platform.xdc and the tool command lines against reviewed golden files; Tcl reads them back."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from dpupose.dpu.board import load_board
from dpupose.dpu.config import config_from_arch, list_configs, load_config
from dpupose.errors import ConfigError
from dpupose.hwbuild.commands import kernel_argv, link_argv, platform_argv
from dpupose.hwbuild.layout import BuildPaths
from dpupose.hwbuild.params import (
    dpu_clock_ids,
    params_tcl,
    platform_xdc,
    tcl_word,
    write_params_tcl,
)
from dpupose.hwbuild.platform import load_platform, platform_from_dict

GOLDEN = Path(__file__).parent / "data" / "hwbuild" / "u96v2-b1600-pynq"
U96 = load_board("ultra96v2")
PFM = load_platform("ultra96v2")


def test_params_and_xdc_match_the_golden_files():
    cfg = load_config("u96v2-b1600-pynq")
    assert params_tcl(cfg, U96, PFM) == (GOLDEN / "params.tcl").read_text()
    assert platform_xdc(cfg, U96, PFM) == (GOLDEN / "platform.xdc").read_text()


def test_command_lines_match_the_golden_file():
    paths = BuildPaths(Path("/src/dpupose/build/hw/u96v2-b1600-pynq"), Path("/src/dpupose/hw/tcl"))
    want = [line for line in (GOLDEN / "commands.txt").read_text().splitlines() if not line.startswith("#")]
    got = [platform_argv(paths, Path("/src/bdf")), kernel_argv(paths, paths.trd_dir), link_argv(paths, paths.trd_dir)]
    assert [shlex.join(argv) for argv in got] == want
    assert "--xp" not in link_argv(paths, paths.trd_dir, postlink=False)


TCLSH = shutil.which("tclsh")
READ_BACK = """
source [lindex $argv 0]
foreach key [lsort [array names dpupose]] { puts "$key=$dpupose($key)" }
puts "clocks=[join $dpupose(clocks_mhz) ,]"
foreach port $dpupose(slave_ports) { puts "port=[join $port ,]" }
foreach out $dpupose(constant_outputs) { puts "output=[join $out ,]" }
"""


def tcl_read_back(path: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """What tclsh itself reads from a params file (the real interpreter, not our list parser)."""
    proc = subprocess.run([TCLSH, "/dev/stdin", str(path)], input=READ_BACK, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    values, ports, outputs = {}, [], []
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        {"port": ports, "output": outputs}.get(key, []).append(value)
        values.setdefault(key, value)
    return values, ports, outputs


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (Debian/Ubuntu: apt-get install tcl)")
@pytest.mark.parametrize("name", list_configs())
def test_tcl_reads_the_values_the_board_and_configuration_give(tmp_path, name):
    cfg = load_config(name)
    write_params_tcl(cfg, U96, PFM, tmp_path / "params.tcl")
    p, ports, outputs = tcl_read_back(tmp_path / "params.tcl")
    assert p["part"] == "xczu3eg-sbva484-1-i" and p["board_part"] == "avnet.com:ultra96v2:part0:1.2"
    assert p["clocks"] == "150,300,75,100,200,400,600"
    id_1x, id_2x = dpu_clock_ids(cfg, U96)
    assert U96.platform_clocks_mhz[id_1x] == cfg.clock_mhz and U96.platform_clocks_mhz[id_2x] == 2 * cfg.clock_mhz
    assert int(p["default_clock_id"]) == id_1x
    assert ports == ["HPC0,S_AXI_HPC0_FPD,0,128", "HP0,S_AXI_HP0_FPD,2,128", "HP1,S_AXI_HP1_FPD,3,128"]
    assert outputs == ["fan_en_b,1"]
    assert p["config"] == name and p["kernel_name"] == "DPUCZDX8G" and p["vivado_version"] == "2022.1"


def test_a_clock_the_platform_lacks_is_refused():
    cfg = config_from_arch("B1152", 250)  # 250/500 MHz: not in the Ultra96-V2 platform clock table
    with pytest.raises(ConfigError, match="no 250 MHz clock for the DPU 1x clock"):
        params_tcl(cfg, U96, PFM)


def test_tcl_words_are_quoted_or_refused():
    assert tcl_word("avnet.com:ultra96v2:part0:1.2") == "avnet.com:ultra96v2:part0:1.2"
    assert tcl_word("my config") == "{my config}"
    for bad in ("a{b", "x[exec rm]", "$HOME", "a\\b", "two\nlines"):
        with pytest.raises(ConfigError, match="cannot go into the Tcl parameter file"):
            tcl_word(bad)


def test_platform_record_rejects_unknown_keys_and_bad_values():
    good = {
        "board_files_vendor": "avnet.com",
        "board_files_name": "ultra96v2",
        "board_files_version": "1.2",
        "board_files_source": "somewhere",
        "pl_clk0_mhz": 100,
        "constant_outputs": [{"port": "fan_en_b", "pin": "F4", "iostandard": "LVCMOS12", "value": 1}],
    }
    assert platform_from_dict(good, "x", "x.toml").constant_outputs[0].pin == "F4"
    with pytest.raises(ConfigError, match="unknown key"):
        platform_from_dict({**good, "fan": 1}, "x", "x.toml")
    with pytest.raises(ConfigError, match="value must be 0 or 1"):
        platform_from_dict({**good, "constant_outputs": [{**good["constant_outputs"][0], "value": 2}]}, "x", "x")
    with pytest.raises(ConfigError, match="pl_clk0_mhz"):
        platform_from_dict({**good, "pl_clk0_mhz": "100"}, "x", "x")


def test_boards_without_a_platform_record_are_named():
    with pytest.raises(ConfigError, match="board 'zcu104' has no platform record.*supports: ultra96v2"):
        load_platform("zcu104")


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (Debian/Ubuntu: apt-get install tcl)")
@pytest.mark.parametrize(
    "title",
    [
        "Avnet Ultra96-V2\nset dpupose(config) other; set dpupose(part) xczu9eg-ffvb1156-2-e",  # Tcl Vivado runs
        "Avnet Ultra96-V2 \\",  # a comment's last backslash carries it onto the next line, set dpupose(part)
    ],
)
def test_a_board_title_stays_inside_its_tcl_comment(tmp_path, title):
    """The board's title is params.tcl's comment on the board line: what tclsh reads is the board's part."""
    import dataclasses

    board = dataclasses.replace(U96, title=title)
    write_params_tcl(load_config("u96v2-b1600-pynq"), board, PFM, tmp_path / "params.tcl")
    p, _, _ = tcl_read_back(tmp_path / "params.tcl")
    assert p["part"] == "xczu3eg-sbva484-1-i" and p["board"] == "ultra96v2" and p["config"] == "u96v2-b1600-pynq"


def test_a_board_record_the_platform_cannot_build_is_refused():
    import dataclasses

    cfg = load_config("u96v2-b1600-pynq")
    twice = dataclasses.replace(U96, platform_clocks_mhz=[150, 300, 200, 400, 200])
    with pytest.raises(ConfigError, match="platform_clocks_mhz lists a clock twice"):
        params_tcl(cfg, twice, PFM)
    hp9 = dataclasses.replace(U96, dpu_ports=[["HPC0", "HP9"]])
    with pytest.raises(ConfigError, match="dpu_ports names 'HP9'; the platform offers HPC0, HPC1, HP0, HP1, HP2, HP3"):
        params_tcl(cfg, hp9, PFM)


def test_slave_ports_are_those_of_the_configuration_s_cores_each_once():
    import dataclasses

    from dpupose.hwbuild.params import slave_ports

    board = dataclasses.replace(U96, dpu_ports=[["HPC0", "HP0", "HP1"], ["HPC0", "HP2", "HP3"]])
    assert slave_ports(config_from_arch("B512", 200), board) == ["HPC0", "HP0", "HP1"]
    assert slave_ports(config_from_arch("B512", 200, cores=2), board) == ["HPC0", "HP0", "HP1", "HP2", "HP3"]
    one = params_tcl(config_from_arch("B512", 200), board, PFM)
    line = next(x for x in one.splitlines() if x.startswith("set dpupose(slave_ports)"))
    assert "HP2" not in line and "{HP1 S_AXI_HP1_FPD 3 128}" in line


def test_board_record_errors_name_the_file_read_where_dpupose_hw_dir_names_another(tmp_path, monkeypatch):
    """They named hw/boards/<board>/board.toml (and .../platform.toml) whatever hw/ folder was read: with
    $DPUPOSE_HW_DIR naming a copy, the user was sent to fix the package's file, not the one read."""
    import dataclasses

    from dpupose.dpu.paths import HW_DIR_ENV, packaged_hw_dir
    from dpupose.dpu.writers import prj_config

    b512 = load_config("u96v2-b512")
    two_cores = dataclasses.replace(b512, cores=2)
    softmax = dataclasses.replace(b512, softmax=True)

    def messages(board):
        out = []
        for call in (
            lambda: prj_config(two_cores, board),
            lambda: prj_config(softmax, dataclasses.replace(board, softmax_port=None)),
            lambda: params_tcl(b512, dataclasses.replace(board, platform_clocks_mhz=(100, 100)), PFM),
            lambda: params_tcl(b512, dataclasses.replace(board, dpu_ports=(("X", "Y", "Z"),)), PFM),
            lambda: load_platform("zcu104"),
        ):
            with pytest.raises(ConfigError) as err:
                call()
            out.append(str(err.value))
        return out

    monkeypatch.delenv(HW_DIR_ENV, raising=False)
    package = messages(load_board("ultra96v2"))
    assert all("hw/boards/" in m for m in package), package
    # the record to add is the platform record, not the board record the message names first
    assert "Add hw/boards/zcu104/platform.toml (see ultra96v2's) to build for it" in package[4]
    mine = tmp_path / "myhw"
    shutil.copytree(packaged_hw_dir(), mine)
    monkeypatch.setenv(HW_DIR_ENV, str(mine))
    copy = messages(load_board("ultra96v2"))
    for message, record in zip(copy, ["ultra96v2/board.toml"] * 4 + ["zcu104/platform.toml"]):
        assert f"{mine}/boards/{record}" in message and "hw/boards/" not in message.replace(f"{mine}/", ""), message
    assert f"Add {mine}/boards/zcu104/platform.toml (see ultra96v2's)" in copy[4]
