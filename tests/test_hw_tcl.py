"""hw/tcl/*.tcl under the recording Vivado stand-in: every shipped configuration passes, broken scripts fail."""

import shutil
import subprocess
from pathlib import Path

import pytest

from dpupose.dpu.board import load_board
from dpupose.dpu.config import list_configs, load_config
from dpupose.dpu.writers import prj_config
from dpupose.hwbuild.inputs import TRD_SKELETON
from dpupose.hwbuild.layout import tcl_dir
from dpupose.hwbuild.params import write_params_tcl, write_platform_xdc
from dpupose.hwbuild.pfmcheck import check_platform, parse_xdc_pins
from dpupose.hwbuild.platform import load_platform
from dpupose.hwbuild.standin import Call, Design, run_standin
from dpupose.hwbuild.tclcheck import _args, check_kernel_tcl, check_platform_tcl
from dpupose.hwbuild.tcllist import TclListError, list_dict, split_list

U96 = load_board("ultra96v2")
PFM = load_platform("ultra96v2")
CFG = load_config("u96v2-b1600-pynq")
PLATFORM_TCL = tcl_dir() / "platform.tcl"
KERNEL_TCL = tcl_dir() / "kernel.tcl"

try:
    import tkinter

    HAVE_TKINTER = True
except ImportError:  # pragma: no cover - depends on how Python was built
    HAVE_TKINTER = False
HAVE_TCLSH = shutil.which("tclsh") is not None
ENGINES = [
    pytest.param("tkinter", marks=pytest.mark.skipif(not HAVE_TKINTER, reason="this Python has no tkinter")),
    pytest.param("tclsh", marks=pytest.mark.skipif(not HAVE_TCLSH, reason="tclsh not installed (apt-get install tcl)")),
]


@pytest.mark.parametrize("name", list_configs())
def test_every_shipped_configuration_gives_the_platform_and_kernel_the_dpu_needs(tmp_path, name):
    cfg = load_config(name)
    (tmp_path / "p").mkdir()
    platform = check_platform_tcl(cfg, U96, PFM, tmp_path / "p")
    assert platform.problems == []
    assert "7x proc_sys_reset" in platform.summary and "zynq_ultra_ps_e" in platform.summary
    (tmp_path / "k").mkdir()
    assert check_kernel_tcl(cfg, U96, PFM, tmp_path / "k").problems == []


@pytest.mark.parametrize("folder", ["a b", "a [1]", "a {b}", "a*b?", "a $x;'q\""])
def test_the_scripts_take_paths_with_blanks_brackets_and_tcl_characters(tmp_path, folder):
    # kernel.tcl globbed "$trd/dpu_ip/..." (brackets and braces of the path are glob patterns: no TRD file
    # found) and took get_files of full paths (patterns too); platform.tcl gave add_files the xdc path as a
    # list of files, which a blank splits in two.
    work = tmp_path / folder
    (work / "p").mkdir(parents=True)
    platform = check_platform_tcl(CFG, U96, PFM, work / "p")
    assert platform.problems == []
    (work / "k").mkdir()
    kernel = check_kernel_tcl(CFG, U96, PFM, work / "k")
    assert kernel.problems == [] and "3 add_files" in kernel.summary


@pytest.mark.parametrize("engine", ENGINES)
def test_both_tcl_engines_record_the_same_design(tmp_path, engine):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    write_platform_xdc(CFG, U96, PFM, tmp_path / "platform.xdc")
    run = run_standin(PLATFORM_TCL, [str(tmp_path / "params.tcl"), "/bdf", str(tmp_path / "x.xsa")], engine=engine)
    assert run.error is None and run.output == f"dpupose: wrote {tmp_path / 'x.xsa'}\n"
    d = Design.from_calls(run.calls)
    # Independent expectations, read off the Ultra96-V2 record by hand: clk_out5/6 = 200/400 MHz = ids 4/5.
    clk = d.cells["/clk_wiz_0"]
    assert clk.props["CONFIG.CLKOUT5_REQUESTED_OUT_FREQ"] == "200"
    assert clk.props["CONFIG.CLKOUT6_REQUESTED_OUT_FREQ"] == "400"
    pfm_clock = {k: list_dict(v) for k, v in list_dict(clk.props["PFM.CLOCK"]).items()}
    assert pfm_clock["clk_out5"] == {
        "id": "4",
        "is_default": "true",
        "proc_sys_reset": "/proc_sys_reset_4",
        "status": "fixed",
    }
    assert d.connected("/clk_wiz_0/locked", "/proc_sys_reset_6/dcm_locked")
    assert d.connected("/axi_intc_0/irq", "/ps/pl_ps_irq0")
    assert d.ports["/fan_en_b"] == {"-dir": "O"}
    assert d.cells["/ps"].props["CONFIG.PSU__SAXIGP2__DATA_WIDTH"] == "128"
    assert d.called("write_hw_platform")[0].args == ("-hw", "-force", "-file", str(tmp_path / "x.xsa"))


@pytest.mark.skipif(not (HAVE_TKINTER and HAVE_TCLSH), reason="needs both tkinter and tclsh")
def test_tkinter_and_tclsh_give_identical_recordings(tmp_path):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    argv = [str(tmp_path / "params.tcl"), "/bdf", str(tmp_path / "x.xsa")]
    assert run_standin(PLATFORM_TCL, argv, "tkinter").calls == run_standin(PLATFORM_TCL, argv, "tclsh").calls


def mutated(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"the test's anchor {old!r} is no longer in {source.name}"
    path = tmp_path / source.name
    path.write_text(text.replace(old, new))
    return path


def platform_problems(tmp_path, old, new, cfg=CFG):
    script = mutated(tmp_path, PLATFORM_TCL, old, new)
    (tmp_path / "w").mkdir()
    return check_platform_tcl(cfg, U96, PFM, tmp_path / "w", script=script).problems


BROKEN_PLATFORMS = [
    (
        "connect_bd_net [get_bd_pins clk_wiz_0/locked] [get_bd_pins $reset/dcm_locked]\n",
        "",
        "/proc_sys_reset_4/dcm_locked is not on /clk_wiz_0/locked",
    ),
    ("create_bd_design $design\n", "create_bd_design $design\ncreate_bd_foo bar\n", "unknown Vivado command"),
    ("__DATA_WIDTH $bits", "__DATA_WIDTH 64", "S_AXI_HP0_FPD is 64 bits wide, the DPU masters are 128"),
    ("connect_bd_net [get_bd_pins axi_intc_0/irq] [get_bd_pins ps/pl_ps_irq0]\n", "", "irq is not on /ps/pl_ps_irq0"),
    ("clk_wiz_0/clk_out$n] [get_bd_pins $reset", "clk_wiz_0/clkout$n] [get_bd_pins $reset", "clk_wiz has no such pin"),
    ("$id == $dpupose(default_clock_id)", "$id == 0", "default clock id(s) [0], expected the DPU 1x clock id 4"),
    ("write_hw_platform -hw -force -file $xsa_file", "", "write_hw_platform is never called"),
    ("create_bd_port -dir O $port", "create_bd_port -dir I $port", "no output port fan_en_b"),
    ("CONFIG.CONST_VAL $value", "CONFIG.CONST_VAL 0", "not driven by one xlconstant of value 1"),
    ("if {![string match", "if {0 && ![string match", "does not check `version -short`"),
    ("CONFIG.PSU__USE__M_AXI_GP2 1", "CONFIG.PSU__USE__M_AXI_GP2 0", "/ps/maxihpm0_lpd_aclk: zynq_ultra_ps_e has no"),
    ('sptag \\"$tag\\"', 'sptag \\"HP3\\"', "does not offer S_AXI_HPC0_FPD as S_AXI_HPC sptag HPC0"),
    ("connect_bd_net [get_bd_pins $ctrl_clock] [get_bd_pins axi_intc_0/s_axi_aclk]\n", "", "s_axi_aclk"),
    ("validate_bd_design\n", "", "validate_bd_design is never called"),
    ("CONFIG.USE_LOCKED true", "CONFIG.USE_LOCKED false", "CONFIG.USE_LOCKED = 'false', expected 'true'"),
    ("CONFIG.PSU__USE__FABRIC__RST 1", "CONFIG.PSU__USE__FABRIC__RST 0", "/ps/pl_resetn0: zynq_ultra_ps_e has no"),
    ("write_hw_platform -hw -force", "write_hw_platform -hw -overwrite", "write_hw_platform has no option -overwrite"),
    ("create_project -force platform", "create_project -force -board platform", "create_project has no option -board"),
    ("make_wrapper -files $bd_file -top", "make_wrapper -files $bd_file -top_level", "has no option -top_level"),
    # One breakage for each check of pfmcheck that the ones above never reach.
    (
        "set ctrl_clock clk_wiz",
        "set pfm_clocks [lrange $pfm_clocks 0 11]\nset ctrl_clock clk_wiz",
        "PFM.CLOCK declares 6 clocks, the board has 7",
    ),
    (
        "create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc axi_intc_0\n",
        "create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc axi_intc_0\n"
        "create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset spare_reset\n",
        "8 proc_sys_reset cells for 7 clocks",
    ),
    ('range \\"$dpupose(irq_inputs)\\"', 'range \\"0\\"', "PFM.IRQ does not offer its intr inputs to v++"),
    (
        "connect_bd_intf_net [get_bd_intf_pins ps/M_AXI_HPM0_LPD] [get_bd_intf_pins ctrl_interconnect/S00_AXI]\n",
        "",
        "/axi_intc_0/s_axi is not reachable from a PS master",
    ),
    ("set_property platform.extensible true [current_project]\n", "", "not marked platform.extensible"),
    ("set_param board.repoPaths [list $board_repo]\n", "", "set_param board.repoPaths is missing"),
    (
        'puts "dpupose: wrote $xsa_file"',
        'set_property PFM.IRQ "intr {id \\"0\\" range \\"32\\"}" [get_bd_cells axi_intc_0]',
        "PFM.* properties are not all set before write_hw_platform",
    ),
    (
        "connect_bd_net [get_bd_pins ps/pl_clk0] [get_bd_pins clk_wiz_0/clk_in1]",
        "create_bd_port -dir I clk_ext\nconnect_bd_net [get_bd_ports clk_ext] [get_bd_pins clk_wiz_0/clk_in1]",
        "/clk_wiz_0/clk_in1 is used but not driven by a clock, reset or lock output",
    ),
    (
        "ctrl_interconnect/M00_AXI] [get_bd_intf_pins axi_intc_0/s_axi]",
        "ctrl_interconnect/M01_AXI] [get_bd_intf_pins axi_intc_0/s_axi]",
        "interface /ctrl_interconnect/M01_AXI: no such interface pin",
    ),
    ('{apply_board_preset "1"}', '{apply_board_preset "0"}', "/ps: the board preset is not applied"),
    (
        "_REQUESTED_OUT_FREQ [lindex $clocks $id]",
        "_REQUESTED_OUT_FREQ [expr {[lindex $clocks $id] + 1}]",
        "/clk_wiz_0/clk_out1 (clock id 0) requests 151 MHz, expected 150",
    ),
    (
        "connect_bd_net [get_bd_pins ps/pl_resetn0] [get_bd_pins clk_wiz_0/resetn]\n",
        "",
        "resetn is not on /ps/pl_resetn0",
    ),
    (
        "connect_bd_net [get_bd_pins ps/pl_resetn0] [get_bd_pins $reset/ext_reset_in]\n",
        "",
        "/proc_sys_reset_0/ext_reset_in is not on /ps/pl_resetn0",
    ),
    (
        "CONFIG.NUM_OUT_CLKS [llength $clocks]",
        "CONFIG.NUM_OUT_CLKS [expr {[llength $clocks] - 1}]",
        "/clk_wiz_0: 6 outputs, the board has 7 clocks",
    ),
    (
        "# Constant PL outputs",
        "validate_bd_design\n# Constant PL outputs",
        "validate_bd_design comes before the last create_bd_*/connect_bd_* call",
    ),
    ('append pfm_axi "$interface {memport \\"M_AXI_GP\\"} "', "", "offers v++ no M_AXI_GP master for kernel control"),
]


@pytest.mark.parametrize(("old", "new", "problem"), BROKEN_PLATFORMS, ids=lambda x: x[:30] if len(x) > 30 else x)
def test_a_broken_platform_script_fails_the_check_with_the_reason(tmp_path, old, new, problem):
    problems = platform_problems(tmp_path, old, new)
    assert any(problem in p for p in problems), problems


def test_board_preset_applied_after_the_platform_settings_is_caught(tmp_path):
    text = PLATFORM_TCL.read_text()
    preset = next(line for line in text.splitlines() if line.startswith("apply_bd_automation"))
    settings = "set_property -dict $ps_config [get_bd_cells ps]"
    moved = text.replace(preset + "\n", "").replace(settings, settings + "\n" + preset)
    (tmp_path / "platform.tcl").write_text(moved)
    (tmp_path / "w").mkdir()
    check = check_platform_tcl(CFG, U96, PFM, tmp_path / "w", script=tmp_path / "platform.tcl")
    assert any("CONFIG set before the board preset" in p for p in check.problems), check.problems


def test_the_scripts_refuse_another_vivado_release(tmp_path):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    params = tmp_path / "params.tcl"
    params.write_text(params.read_text().replace("2022.1", "2021.2"))
    run = run_standin(PLATFORM_TCL, [str(params), "/bdf", str(tmp_path / "x.xsa")])
    assert run.error == "this flow needs Vivado 2021.2; this is Vivado 2022.1"
    assert not Design.from_calls(run.calls).called("create_project")


def test_a_params_file_without_a_key_stops_the_script(tmp_path):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    params = tmp_path / "params.tcl"
    params.write_text("".join(line for line in params.open() if "dpupose(slave_ports)" not in line))
    run = run_standin(PLATFORM_TCL, [str(params), "/bdf", str(tmp_path / "x.xsa")])
    assert "does not set dpupose(slave_ports)" in run.error


def test_prj_config_clock_ids_must_carry_the_configuration_clocks(tmp_path):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    write_platform_xdc(CFG, U96, PFM, tmp_path / "platform.xdc")
    run = run_standin(PLATFORM_TCL, [str(tmp_path / "params.tcl"), "/bdf", str(tmp_path / "x.xsa")])
    design = Design.from_calls(run.calls)
    prj = prj_config(CFG, U96).replace("id=4:DPUCZDX8G_1.aclk", "id=0:DPUCZDX8G_1.aclk")
    problems = check_platform(design, CFG, U96, PFM, prj, tmp_path / "x.xsa")
    assert "prj_config clock id 0 (150 MHz) for DPUCZDX8G_1.aclk, expected 200 MHz" in problems
    assert check_platform(design, CFG, U96, PFM, prj_config(CFG, U96), tmp_path / "y.xsa") == [
        f"write_hw_platform writes {tmp_path / 'x.xsa'}, expected {tmp_path / 'y.xsa'}"
    ]


def test_every_modelled_vivado_command_checks_its_options(tmp_path):
    # The commands standin.tcl defines (those a fresh interpreter lacks) each refuse an option Vivado does
    # not have; none may lack an option list.
    script = tmp_path / "s.tcl"
    script.write_text(
        "set fresh [interp create]\n"
        "set base [$fresh eval {info commands}]\n"
        "set cmds [concat [info commands ::ipx::*] [info commands ::ipgui::*]]\n"
        "foreach c [info commands] { if {$c ni $base && $c ne $fresh} { lappend cmds $c } }\n"
        'foreach c [lsort $cmds] { catch {$c -no_such_option x} msg; puts "[string trimleft $c :] $msg" }\n'
    )
    lines = run_standin(script, []).output.splitlines()
    names = {line.split()[0] for line in lines}
    assert {"write_hw_platform", "create_bd_cell", "set_property", "ipx::package_project", "package_xo"} <= names
    for line in lines:
        name = line.split()[0]
        assert line.endswith(f"{name} has no option -no_such_option in Vivado 2022.1"), line


def test_the_stand_in_does_not_touch_files_and_refuses_exec_and_exit(tmp_path):
    script = tmp_path / "s.tcl"
    target = tmp_path / "made"
    script.write_text(f"file mkdir {target}\nfile delete -force {script}\nputs [file exists {script}]\nexec ls\n")
    run = run_standin(script, [])
    assert not target.exists() and script.exists()
    assert run.output == "1\n" and run.error == "exec is not allowed under the stand-in"
    assert [c.name for c in run.calls] == ["file", "file", "exec"]
    script.write_text("exit 3\n")
    assert run_standin(script, []).error == "the script called exit 3"


REST_N_2 = "ipx::infer_bus_interface ap_rst_n_2 xilinx.com:signal:reset_rtl:1.0 $core\n"
PACKAGE_XO = "package_xo -xo_path $xo_file -kernel_name DPUCZDX8G -ip_directory $packaged -kernel_xml $kernel_xml"


def kernel_problems(tmp_path, names=None, old=None, new=None):
    script = mutated(tmp_path, KERNEL_TCL, old, new) if old else None
    (tmp_path / "w").mkdir()
    return check_kernel_tcl(CFG, U96, PFM, tmp_path / "w", trd_names=names, script=script).problems


def test_kernel_packaging_needs_every_trd_file(tmp_path):
    names = [n for n in TRD_SKELETON if not n.endswith("kernel.xml")]
    problems = kernel_problems(tmp_path, names)
    missing = tmp_path / "w/trd/prj/Vitis/kernel_xml/dpu/kernel.xml"
    assert problems == [f"the script stopped: the DPU TRD has no {missing}; is this the Vitis AI 2.5 DPUCZDX8G TRD?"]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("set_property sdx_kernel true $core", "", "sdx_kernel is None, a Vitis RTL kernel needs 'true'"),
        (
            "-kernel_name $dpupose(kernel_name)",
            "-kernel_name dpu",
            "package_xo -kernel_name 'dpu', expected 'DPUCZDX8G'",
        ),
        ("[list [file normalize $dpu_conf]]", "{}", "add_files does not add the generated"),
        ("M_AXI_GP0 M_AXI_HP0 M_AXI_HP2 S_AXI_CONTROL", "M_AXI_GP0 M_AXI_HP0", "M_AXI_HP2 is not associated"),
        ("ipx::infer_bus_interface ap_clk_2", "ipx::infer_bus_interface ap_clk", "ap_clk_2 (the 2x DSP clock)"),
        ("ipx::save_core $core\n", "", "package_xo runs before ipx::save_core"),
        (
            "foreach busif {M_AXI_GP0",
            "ipx::associate_bus_interfaces -busif ap_rst_n_2 -clock ap_clk_2 $core\nforeach busif {M_AXI_GP0",
            "the IP has no bus interface ap_rst_n_2 (yet)",
        ),
        ("set_property core_revision 0 $core", "set_property core_revision 0 {}", "set_property: no object"),
        ("-import_files -set_current false", "-import_files -set_current false -upgrade", "has no option -upgrade"),
        ("    -kernel_xml $kernel_xml", "    -kernel_xml_path $kernel_xml", "package_xo has no option -kernel_xml_"),
        ("-import_files -set_current false", "-set_current false", "-library RTLKernel -import_files is not called"),
        (
            "set_property sdx_kernel_type rtl $core\n",
            "",
            "the IP's sdx_kernel_type is None, a Vitis RTL kernel needs 'rtl'",
        ),
        (
            "    [trd_files $ip_dir inc/function.vh] \\\n",
            "",
            "does not include the TRD's dpu_ip/DPUCZDX8G_v*/inc/function.vh",
        ),
        ("{M_AXI_GP0 M_AXI_HP0 M_AXI_HP2 S_AXI_CONTROL}", "{M_AXI_GP0 M_AXI_HP0 M_AXI_HP2}", "S_AXI_CONTROL is not"),
        (
            REST_N_2,
            REST_N_2 + "ipx::associate_bus_interfaces -busif M_AXI_HP0 -clock ap_clk_2 $core\n",
            "M_AXI_HP0 is not",
        ),
        ('puts "dpupose: wrote $xo_file"', PACKAGE_XO, "package_xo is called 2 times, expected once"),
        ('puts "dpupose: wrote $xo_file"', "ipx::save_core $core", "package_xo runs before ipx::save_core"),
        ("-xo_path $xo_file", "-xo_path dpu.xo", "package_xo -xo_path 'dpu.xo', expected '"),
        ("-ip_directory $packaged", "-ip_directory ./other", "-ip_directory './other', expected './packaged_kernel'"),
        ("    -kernel_xml $kernel_xml", "    -kernel_xml kernel.xml", "-kernel_xml 'kernel.xml', expected '"),
        ("-library RTLKernel", "-library user", "ipx::package_project -library RTLKernel -import_files is not called"),
        ("-part $dpupose(part)", "-part xczu9eg-ffvb1156-2-e", "the board's part is 'xczu3eg-sbva484-1-i'"),
    ],
)
def test_a_broken_kernel_script_fails_the_check(tmp_path, old, new, problem):
    problems = kernel_problems(tmp_path, old=old, new=new)
    assert any(problem in p for p in problems), problems


FREQ_HZ = (
    "set_property value_resolve_type user "
    "[ipx::get_bus_parameters FREQ_HZ -of_objects [ipx::get_bus_interfaces {} -of_objects $core]]\n"
)


def test_an_option_followed_by_another_option_has_no_value():
    call = Call(0, "package_xo", ("-a", "-b", "x", "-c", "y", "z", "-d"))
    assert _args(call) == {"-a": "", "-b": "x", "-c": "y", "-d": ""}


def test_a_bus_interface_is_only_there_once_the_packager_or_the_script_made_it(tmp_path):
    # The DPU's 2x clock port ap_clk_2 is not one the packager infers (the TRD infers it by hand), so its
    # FREQ_HZ cannot be reached before `ipx::infer_bus_interface ap_clk_2`; aclk's can.
    for sub in "abc":
        (tmp_path / sub).mkdir()
    anchor = "ipx::create_xgui_files $core\n"
    early = kernel_problems(tmp_path / "a", old=anchor, new=anchor + FREQ_HZ.format("ap_clk_2"))
    assert early and "-of_objects names no object" in early[0], early
    assert kernel_problems(tmp_path / "b", old=anchor, new=anchor + FREQ_HZ.format("aclk")) == []
    anchor = "ipx::infer_bus_interface ap_rst_n_2"
    late = kernel_problems(tmp_path / "c", old=anchor, new=FREQ_HZ.format("ap_clk_2") + anchor)
    assert late == []


def test_kernel_script_adds_the_trd_block_design_hooks_when_present(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    names = [*TRD_SKELETON, "dpu_ip/Vitis/dpu/bd/bd.tcl"]
    write_params_tcl(CFG, U96, PFM, tmp_path / "w" / "params.tcl")
    for n in names:
        (tmp_path / "trd" / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "trd" / n).touch()
    (tmp_path / "w" / "dpu_conf.vh").touch()
    argv = [str(tmp_path / "w" / "params.tcl"), str(tmp_path / "trd"), str(tmp_path / "w" / "dpu_conf.vh"), "x.xo"]
    run = run_standin(KERNEL_TCL, argv)
    assert run.error is None
    names_called = [c.name for c in run.calls]
    assert "ipx::add_file_group" in names_called and ("file", ("mkdir", "./packaged_kernel/bd")) in [
        (c.name, c.args) for c in run.calls
    ]
    assert not (tmp_path / "packaged_kernel").exists()  # recorded, not done


def test_tcl_list_parser_follows_tcl_rules():
    assert split_list('a {b c} "d e" f\\ g {x {y z}} ""') == ["a", "b c", "d e", "f g", "x {y z}", ""]
    assert split_list('"tab\\there" \\x41\\u00e9 {keep \\n}') == ["tab\there", "Aé", "keep \\n"]
    assert list_dict('id "4" is_default "true" memory "ps HP0_DDR_LOW"')["memory"] == "ps HP0_DDR_LOW"
    assert list_dict("k 1 j 2 k 3") == {"k": "3", "j": "2"}  # as Tcl's dict get: the later value of a key
    # \U stops before a digit that could take it past U+10FFFF, as Tcl's parser does (Tcl 8.6 itself cannot
    # hold those characters, so this is not compared with the interpreter below).
    high = [chr(0x11000) + "0", chr(0x10FFFF) + "F", chr(0x1F600) + "1"]
    assert split_list("\\U110000 \\U0010FFFFF \\U0001F6001") == high
    refusals = {
        "{open": "unmatched open brace in list: '{open'",
        '"open': "unmatched open quote in list: '\"open'",
        "{a}b": "list element in braces followed by 'b'",
        '"a"b': "list element in quotes followed by 'b'",
        "k": "missing value to go with key in dict: 'k'",
    }
    for bad, refusal in refusals.items():
        with pytest.raises(TclListError) as refused:
            list_dict(bad) if bad == "k" else split_list(bad)
        assert str(refused.value) == refusal, bad


SPLIT_SCRIPT = """
set text [encoding convertfrom utf-8 [binary decode hex [lindex $argv 0]]]
foreach x $text { puts [binary encode hex [encoding convertto utf-8 $x]] }
"""


def tcl_split(text: str) -> list[str]:
    """How the real Tcl interpreter splits `text` (tkinter in process, else tclsh)."""
    if HAVE_TKINTER:
        return list(tkinter.Tcl().splitlist(text))
    argv = [shutil.which("tclsh"), "/dev/stdin", text.encode().hex()]
    proc = subprocess.run(argv, input=SPLIT_SCRIPT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [bytes.fromhex(line).decode() for line in proc.stdout.split("\n")[:-1]]


@pytest.mark.skipif(not (HAVE_TKINTER or HAVE_TCLSH), reason="no Tcl interpreter (apt-get install tcl)")
def test_tcl_list_parser_agrees_with_tcl():
    cases = [
        'clk_out1 {id "0" is_default "true" proc_sys_reset "/proc_sys_reset_0" status "fixed"}',
        'a\\ b "c\\"d" {e\\}f} \\{g \\101\\x42 "\\u0043\\n" {}',
        "  lead and\ttabs\n newline  ",
        '{nested {deep {deeper}}} "q {not a brace}" x\\\n   y',
        "x\\\n\t \ty trailing\\",  # a continuation's blanks are spaces and tabs; a last backslash is itself
        "\\x414 \\x4A \\xg \\U000000E91 \\a\\b a\vb\fc",  # \x takes 2 digits, \U 8; none: the letter
        "\\400 \\477 \\3777 \\0401 \\12",  # octal stops before passing \377: \400 is a space and a 0
    ]
    for text in cases:
        assert split_list(text) == tcl_split(text), text


def test_xdc_pins_are_read_in_both_forms():
    text = (
        "set_property PACKAGE_PIN F4 [get_ports fan_en_b]\nset_property IOSTANDARD LVCMOS12 [get_ports {fan_en_b}]\n"
        "set_property -dict {PACKAGE_PIN A1 IOSTANDARD LVCMOS18} [get_ports led] ;# a comment\n"
    )
    assert parse_xdc_pins(text) == {
        "fan_en_b": {"PACKAGE_PIN": "F4", "IOSTANDARD": "LVCMOS12"},
        "led": {"PACKAGE_PIN": "A1", "IOSTANDARD": "LVCMOS18"},
    }


def test_prj_config_must_use_both_dpu_clock_ids_and_the_pins_need_their_io_standard(tmp_path):
    write_params_tcl(CFG, U96, PFM, tmp_path / "params.tcl")
    xdc = tmp_path / "platform.xdc"
    write_platform_xdc(CFG, U96, PFM, xdc)
    xdc.write_text(xdc.read_text().replace("IOSTANDARD LVCMOS12", "IOSTANDARD LVCMOS18"))
    run = run_standin(PLATFORM_TCL, [str(tmp_path / "params.tcl"), "/bdf", str(tmp_path / "x.xsa")])
    design = Design.from_calls(run.calls)
    prj = prj_config(CFG, U96).replace("id=5:DPUCZDX8G_1.ap_clk_2\n", "")  # the 2x clock left to v++'s default
    problems = check_platform(design, CFG, U96, PFM, prj, tmp_path / "x.xsa")
    assert problems == [
        "prj_config does not use the DPU clock ids 4/5",
        "port fan_en_b: constraints {'PACKAGE_PIN': 'F4', 'IOSTANDARD': 'LVCMOS18'}, expected "
        f"{{'PACKAGE_PIN': 'F4', 'IOSTANDARD': 'LVCMOS12'}} (files: [{str(xdc)!r}])",
    ]


def test_the_replay_takes_negative_values_as_values_and_needs_two_ends_for_an_interface_connection():
    from dpupose.hwbuild.standin import Call

    calls = [
        Call(0, "create_bd_cell", ("-type", "ip", "-vlnv", "xilinx.com:ip:xlconstant", "c")),
        Call(1, "set_property", ("CONFIG.CONST_VAL", "-1", "/c")),
        Call(2, "set_property", ("-dict", "CONFIG.CONST_WIDTH -2", "/c")),
        Call(3, "connect_bd_intf_net", ("/a/M00_AXI", "/b/S00_AXI", "/c/S01_AXI")),
        Call(4, "connect_bd_intf_net", ("-boundary_type", "upper", "/a/M01_AXI", "/b/S01_AXI")),
    ]
    d = Design.from_calls(calls)
    assert d.cells["/c"].props == {"CONFIG.CONST_VAL": "-1", "CONFIG.CONST_WIDTH": "-2"}
    assert d.intf_nets == [("/a/M01_AXI", "/b/S01_AXI")]
