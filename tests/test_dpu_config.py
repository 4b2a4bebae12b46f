"""DPU configurations and board records: loading, rejection of unknown keys and illegal combinations."""

import re
from pathlib import Path

import pytest

from dpupose.dpu.board import default_config_name, list_boards, load_board
from dpupose.dpu.config import (
    Activations,
    AluParallel,
    Arch,
    DpuConfig,
    DspUsage,
    RamUsage,
    config_from_arch,
    list_configs,
    load_config,
)
from dpupose.dpu.paths import HW_DIR_ENV, hw_dir
from dpupose.errors import ConfigError

REQUIRED_U96_CONFIGS = {"u96v2-b1600-pynq", "u96v2-b2304-avnet", "u96v2-b1152", "u96v2-b800", "u96v2-b512"}


def write(tmp_path: Path, text: str | bytes, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def test_shipped_configs_load_and_include_the_required_ones():
    names = list_configs()
    assert set(names) >= REQUIRED_U96_CONFIGS
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.board in list_boards()


def test_default_pynq_config_matches_dpu_pynq_2_5():
    assert default_config_name("ultra96v2") == "u96v2-b1600-pynq"
    cfg = load_config(default_config_name("ultra96v2"))
    assert (cfg.arch, cfg.dsp_usage, cfg.ram_usage) == (Arch.B1600, DspUsage.HIGH, RamUsage.LOW)
    assert cfg.channel_augmentation and cfg.alu_parallel is AluParallel.DEFAULT
    assert cfg.conv_activations is Activations.RELU_LEAKYRELU_RELU6
    assert cfg.alu_activations is Activations.RELU_RELU6
    assert (cfg.clock_mhz, cfg.clock_2x_mhz, cfg.cores) == (200, 400, 1)
    assert (cfg.pp, cfg.icp, cfg.ocp, cfg.alu_pp) == (8, 10, 10, 4)


def test_to_dict_round_trips():
    for name in list_configs():
        cfg = load_config(name)
        assert DpuConfig.from_dict(cfg.to_dict(), name=name) == cfg


def test_load_by_path(tmp_path):
    p = write(tmp_path, 'arch = "B800"\nclock_mhz = 150\n', "mine.toml")
    cfg = load_config(p)
    assert (cfg.name, cfg.arch, cfg.clock_mhz) == ("mine", Arch.B800, 150)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'arch = "B1600"\nclock_mhz = 200\nram_usag = "low"\n',
            r"unknown key\(s\) ram_usag \(did you mean ram_usage\?\);",
        ),
        (
            'arch = "B1600"\nclock_mhz = 200\nram_usgae = "low"\n',
            r"unknown key\(s\) ram_usgae \(did you mean ram_usage\?\);",
        ),
        ('arch = "B1600"\nclock_mhz = 200\nspeed = 1\n', r"unknown key\(s\) speed; allowed keys: alu_activations, "),
        ('arch = "B1600"\nclock_mhz = 200\ncore = 2\n', r"unknown key\(s\) core \(did you mean cores\?\);"),
        ('arch = "B9999"\nclock_mhz = 200\n', "unknown DPU ARCH 'B9999'"),
        ("clock_mhz = 200\n", r"c\.toml: arch is required: add a line such as arch = \"B1600\" \(the DPU size\)$"),
        (
            'arch = "B1600"\n',
            r"c\.toml: clock_mhz is required: add a line such as clock_mhz = 200 \(the 1x clock in MHz\)$",
        ),
        ("", r"c\.toml: arch and clock_mhz are required: add lines such as arch = \"B1600\" \(the DPU size\) and "),
        ('arch = "B1600"\nclock_mhz = 200\ndsp_usage = "medium"\n', "dsp_usage = 'medium' is not one of"),
        ('arch = "B1600"\nclock_mhz = "fast"\n', "clock_mhz must be of type int"),
        ('arch = "B1600"\nclock_mhz = 200\nsoftmax = 1\n', "softmax must be of type bool"),
        (
            'arch = "B1152"\nclock_mhz = 200\nalu_parallel = 8\n',
            "alu_parallel = 8 exceeds the pixel parallelism 4",
        ),
        ('arch = "B1600"\nclock_mhz = 200\ncores = 5\n', "1 to 4 cores"),
        ('arch = "B1600"\nclock_mhz = 900\n', "is above 400 MHz"),
        ('arch = "B1600"\nclock_mhz = 0\n', "is below 25 MHz"),
        ('arch = "B1600"\nclock_mhz = 200\ndevice_family = "zynq7000"\n', "not supported"),
        ('arch = "B1600"\nclock_mhz = 200\nuram_wgt_banks = 12\n', "exceeds the 11 wgt banks"),
        ('arch = "B1600"\nclock_mhz = 200\nuram_img_banks = 2\nlutram_wgt_banks = 1\n', "cannot both"),
        ('arch = "B1600"\nclock_mhz = [200\n', "not valid TOML"),
        (
            'arch = "B1600"\nclock_mhz = 200\narch = "B800"\n',
            r"not valid TOML: Cannot overwrite a value \(at line 3, column 14\): arch is given a value twice; keep one",
        ),
        (  # the line TOML names read whole: the 12th, not the 1st
            'arch = "B1600"\n' + "# a note\n" * 9 + "clock_mhz = 200\nclock_mhz = 250\n",
            r"\(at line 12, column 16\): clock_mhz is given a value twice; keep one line for it$",
        ),
        ('arch = "B1600"\nclock_mhz = 200\nalu_parallel = true\n', "alu_parallel = True is not one of"),
        ('arch = "B1600"\nclock_mhz = 200\nalu_parallel = "4"\n', "alu_parallel = '4' is not one of"),
        ("arch = 1600\nclock_mhz = 200\n", 'arch must be a string such as "B1600", got 1600'),
        ('arch = "B1600"\nclock_mhz = 200\n# caf\xe9\n'.encode("latin-1"), "not a TOML text file"),
    ],
)
def test_bad_configurations_are_rejected_with_the_reason(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_a_folder_given_as_the_configuration(tmp_path):
    (tmp_path / "mine.toml").mkdir()
    with pytest.raises(ConfigError, match="is a folder; give a configuration file"):
        load_config(tmp_path / "mine.toml")


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="u96v2-b1600-pynq"):
        load_config("no-such-config")


def test_config_from_arch_uses_pynq_defaults_and_optional_uram():
    cfg = config_from_arch("b2304", 300, cores=2)
    assert (cfg.arch, cfg.clock_mhz, cfg.cores, cfg.uram) == (Arch.B2304, 300, 2, False)
    with_uram = config_from_arch("B4096", 300, use_uram=True)
    assert (with_uram.uram_wgt_banks, with_uram.uram_bias_banks) == (17, 1)


def test_boards_are_records_with_their_devices():
    devices = {name: load_board(name).device for name in list_boards()}
    assert devices == {"ultra96v2": "ZU3EG", "zcu104": "ZU7EV", "zcu102": "ZU9EG", "kv260": "K26"}
    u96 = load_board("Ultra96-V2")
    assert u96.resources.dsp == 360 and u96.resources.bram36 == 216 and u96.resources.uram == 0
    assert u96.ddr_bandwidth_gbps == pytest.approx(4.27)
    assert u96.clock_id(200) == 4 and u96.clock_id(400) == 5 and u96.clock_id(250) is None


def test_unknown_board(tmp_path):
    with pytest.raises(ConfigError, match="known boards: kv260, ultra96v2, zcu102, zcu104"):
        load_board("zedboard")


def test_a_configuration_naming_an_unknown_board_is_refused_with_its_file(tmp_path):
    path = write(tmp_path, 'arch = "B1600"\nclock_mhz = 300\nboard = "zedboard"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: unknown board 'zedboard'; known boards: kv260,"):
        load_config(path)
    assert load_config(write(tmp_path, 'arch = "B1600"\nclock_mhz = 300\nboard = "KV260"\n')).board == "KV260"


def test_board_record_rejects_unknown_keys(tmp_path, monkeypatch):
    hw = tmp_path / "hw"
    (hw / "dpu" / "configs").mkdir(parents=True)
    (hw / "boards" / "b").mkdir(parents=True)
    text = (hw_dir() / "boards" / "ultra96v2" / "board.toml").read_text()
    (hw / "boards" / "b" / "board.toml").write_text("colour = 'blue'\n" + text)
    monkeypatch.setenv(HW_DIR_ENV, str(hw))
    with pytest.raises(ConfigError, match=r"unknown key.*colour"):
        load_board("b")


def assert_edited_board_refused(tmp_path, monkeypatch, line: str, value: str, message: str) -> None:
    """The shipped Ultra96-V2 record with `value` appended to its line starting with `line`, loaded as board
    "b" from a scratch hw/ folder, is refused with `message`."""
    hw = tmp_path / "hw"
    (hw / "dpu" / "configs").mkdir(parents=True)
    (hw / "boards" / "b").mkdir(parents=True)
    lines = (hw_dir() / "boards" / "ultra96v2" / "board.toml").read_text().splitlines()
    edited = [line + value if row.startswith(line) else row for row in lines]
    assert edited != lines
    (hw / "boards" / "b" / "board.toml").write_text("\n".join(edited) + "\n")
    monkeypatch.setenv(HW_DIR_ENV, str(hw))
    with pytest.raises(ConfigError, match=message):
        load_board("b")


@pytest.mark.parametrize(
    ("line", "value", "message"),
    [
        ("platform_clocks_mhz = ", "150", r"platform_clocks_mhz: expected a list of clock frequencies"),
        ("platform_clocks_mhz = ", '["a"]', r"platform_clocks_mhz: expected a positive integer, got 'a'"),
        ("ddr_bandwidth_gbps = ", '"fast"', r"ddr_bandwidth_gbps: expected a positive number"),
        ("ddr_bandwidth_gbps = ", "0", r"ddr_bandwidth_gbps: expected a positive number, got 0"),
        ("ddr_bandwidth_gbps = ", "-1", r"ddr_bandwidth_gbps: expected a positive number, got -1"),
        ("max_safe_dpu_clock_mhz = ", '"200"', r"max_safe_dpu_clock_mhz: expected a positive integer"),
        ("dsp_fmax_mhz = ", "645.5", r"dsp_fmax_mhz: expected a positive integer"),
        ("ddr_bandwidth_gbps = ", "nan", r"ddr_bandwidth_gbps: expected a positive number, got nan"),
        ("platform_clocks_mhz = ", "[]", r"platform_clocks_mhz: expected a list of clock frequencies in MHz, got \[\]"),
        ("dsp = ", "true", r"resources\.dsp: expected a non-negative number, got True"),
        ("dsp = ", "360\ncolour = 1", r"resources: unknown key\(s\) colour; allowed keys: bram36, dsp, ff, lut, uram"),
        ("title = ", "3", r"title must be a string, got 3"),
        ("default_dpu_config = ", "3", r"default_dpu_config must be a string, got 3"),
        ("dpu_ports = ", "[]", r"dpu_ports must list \[GP0, HP0, HP2\] platform ports \(strings\) per core"),
        ("dpu_ports = ", '[["HPC0", "HP0"]]', r"dpu_ports must list \[GP0, HP0, HP2\]"),
    ],
)
def test_board_record_values_of_the_wrong_kind_are_named(tmp_path, monkeypatch, line, value, message):
    assert_edited_board_refused(tmp_path, monkeypatch, line, value, message)


@pytest.mark.parametrize(
    ("line", "value", "message"),
    [
        (
            "impl_strategy = ",
            '"Performance_Explore\\n[vivado]\\nprop=run.impl_1.STEPS.OPT_DESIGN.TCL.PRE=/tmp/hook.tcl"',
            r"impl_strategy holds 'Performance_Explore\\n\[vivado\]\\nprop=.*; it may hold only letters, digits, '_', ",
        ),
        (
            "dpu_ports = ",
            '[["HPC0", "HP0", "HP1\\nnk=DPUCZDX8G:4"]]',
            r"dpu_ports holds 'HP1\\nnk=DPUCZDX8G:4'; it may",
        ),
        (
            "notes = ",
            '"x"\nsoftmax_port = "HP3 # x"',
            r"softmax_port holds 'HP3 # x'; it may hold only letters, digits and ",
        ),
    ],
)
def test_board_record_values_that_go_into_the_link_configuration_are_plain(tmp_path, monkeypatch, line, value, message):
    """impl_strategy, dpu_ports and softmax_port are lines of the v++ link configuration (prj_config): a line
    break in one adds a line of its own, here a Tcl hook Vivado would run or a fourth DPU core."""
    assert_edited_board_refused(tmp_path, monkeypatch, line, value, message)


def test_a_board_record_without_a_required_key_or_a_default_configuration_is_named(tmp_path, monkeypatch):
    hw = tmp_path / "hw"
    (hw / "dpu" / "configs").mkdir(parents=True)
    (hw / "boards" / "b").mkdir(parents=True)
    lines = (hw_dir() / "boards" / "ultra96v2" / "board.toml").read_text().splitlines()
    monkeypatch.setenv(HW_DIR_ENV, str(hw))

    def without(*keys: str) -> None:
        kept = [row for row in lines if not row.startswith(keys)]
        assert len(kept) == len(lines) - len(keys)
        (hw / "boards" / "b" / "board.toml").write_text("\n".join(kept) + "\n")

    without("dsp_fmax_mhz = ", "cpu = ")
    with pytest.raises(ConfigError, match=r"board\.toml: missing key\(s\) cpu, dsp_fmax_mhz$"):
        load_board("b")
    without("default_dpu_config = ")  # a record may leave it out; asking for it is then an error
    assert load_board("b").default_dpu_config is None
    with pytest.raises(ConfigError, match=r"^board b names no default DPU configuration \(default_dpu_config\)$"):
        default_config_name("b")


def test_board_names_are_read_without_case_dashes_or_underscores():
    assert {load_board(n).name for n in ("ultra96v2", "Ultra96-V2", "ULTRA96_V2", " zcu_104 ")} == {
        "ultra96v2",
        "zcu104",
    }


def test_the_shipped_boards_load():
    for name in list_boards():
        assert load_board(name).impl_strategy


def test_hw_dir_override_and_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(HW_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=f"no hw/ folder.*{HW_DIR_ENV}"):
        list_configs()


def test_hw_dir_is_the_one_the_package_carries(tmp_path, monkeypatch):
    """In the checkout, the package's resources/hw is the repository's hw/ (a wheel carries a copy:
    tests/test_package.py); missing, the error says to reinstall."""
    from dpupose.dpu import paths

    monkeypatch.delenv(HW_DIR_ENV, raising=False)
    assert hw_dir() == Path(__file__).resolve().parents[1] / "hw"
    monkeypatch.setattr(paths, "packaged_hw_dir", lambda: tmp_path / "gone")
    message = f"hw/ folder .* is missing at .*gone: reinstall dpupose, or set {HW_DIR_ENV}"
    with pytest.raises(ConfigError, match=message):
        list_configs()


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ("clock_mhz = 25", None),
        ("clock_mhz = 24", "clock_mhz = 24 is below 25 MHz"),
        ("clock_mhz = 400", None),
        ("clock_mhz = 401", "clock_mhz = 401 is above 400 MHz"),
        ("clock_mhz = 200\ncores = 4", None),
        ("clock_mhz = 200\ncores = 0", "cores = 0: DPUCZDX8G supports 1 to 4 cores"),
        ("clock_mhz = 200\nuram_img_banks = -1", "uram_img_banks / lutram_img_banks must not be negative"),
        ("clock_mhz = 200\nlutram_bias_banks = -1", "uram_bias_banks / lutram_bias_banks must not be negative"),
    ],
)
def test_the_limits_are_inclusive_and_negative_banks_are_refused(tmp_path, line, refusal):
    # 25 and 400 MHz and four cores are the documented limits themselves; a negative bank count would have
    # handed BRAM back (core_resources subtracts moved banks). A limit is taken as written, and each refusal
    # names the value that is out of range (any of the refusals had passed for any case).
    path = write(tmp_path, f'arch = "B1600"\n{line}\n')
    if refusal is None:
        cfg = load_config(path)
        written = {key: int(value) for key, value in (item.split(" = ") for item in line.splitlines())}
        assert {key: getattr(cfg, key) for key in written} == written
    else:
        with pytest.raises(ConfigError, match=re.escape(refusal)):
            load_config(path)


def test_option_values_are_read_without_regard_to_case_and_arch_without_its_b(tmp_path):
    cfg = load_config(write(tmp_path, 'arch = "1600"\nclock_mhz = 200\nram_usage = "HIGH"\ndsp_usage = "Low"\n'))
    assert (cfg.arch, cfg.ram_usage, cfg.dsp_usage) == (Arch.B1600, RamUsage.HIGH, DspUsage.LOW)
    assert Arch.parse(" b512 ") is Arch.B512


def test_peak_gops_counts_every_core():
    # The ARCH's number is its peak operations per 1x cycle: B1600 at 200 MHz is 320 GOPS a core.
    assert DpuConfig(name="t", arch=Arch.B1600, clock_mhz=200).peak_gops == pytest.approx(320.0)
    assert DpuConfig(name="t", arch=Arch.B1600, clock_mhz=200, cores=2).peak_gops == pytest.approx(640.0)
    assert DpuConfig(name="t", arch=Arch.B4096, clock_mhz=300, cores=3).peak_gops == pytest.approx(4096 * 0.3 * 3)


def test_a_file_named_without_toml_is_read_as_a_path(tmp_path, monkeypatch):
    # A name that is no shipped configuration but a file in the current folder is that file.
    monkeypatch.chdir(tmp_path)
    write(tmp_path, 'arch = "B800"\nclock_mhz = 150\n', "mine")
    cfg = load_config("mine")
    assert (cfg.name, cfg.arch, cfg.clock_mhz) == ("mine", Arch.B800, 150)


def test_a_configuration_file_s_errors_say_where(tmp_path):
    """A missing file, TOML's own error with its line and column, the first byte that is not UTF-8 (counted from
    0), and every unknown key (sorted), each named."""
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == (
        f"{missing}: no such file; give the path of a configuration .toml, or a shipped configuration's name: "
        f"{', '.join(list_configs())}"
    )
    bad = write(tmp_path, 'arch = "B1600"\nclock_mhz = 2 00\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value).startswith(f"{bad}: not valid TOML: ")
    assert str(info.value).endswith("(at line 2, column 15)")  # the second 0
    latin = write(tmp_path, 'arch = "B1600"\n# caf\xe9\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(latin)
    assert str(info.value) == f"{latin}: not a TOML text file (byte 20 is not UTF-8)"  # 15 + len("# caf")
    odd = write(tmp_path, 'arch = "B1600"\nclock_mhz = 200\nzeta = 1\nalpha = 2\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) alpha, zeta; allowed keys: alu_activations, "):
        load_config(odd)


# --- found by a mutation audit: behaviour no test above pinned ---------------------------------


def test_hw_dir_override_needs_both_configs_and_boards_and_an_empty_one_is_unset(tmp_path, monkeypatch):
    """$DPUPOSE_HW_DIR is taken only as a folder with both dpu/configs/ and boards/ (one of them alone is another
    folder given by mistake), and set empty it is not set (the one dpupose carries)."""
    from dpupose.dpu import paths

    for present in (["dpu/configs"], ["boards"], ["dpu/configs", "boards"]):
        hw = tmp_path / "-".join(p.replace("/", "_") for p in present) / "hw"
        for folder in present:
            (hw / folder).mkdir(parents=True)
        monkeypatch.setenv(HW_DIR_ENV, str(hw))
        if len(present) == 2:
            assert hw_dir() == hw and paths.configs_dir() == hw / "dpu" / "configs"
            assert paths.boards_dir() == hw / "boards"
            continue
        with pytest.raises(ConfigError) as exc:
            hw_dir()
        assert str(exc.value) == (
            f"no hw/ folder with dpu/configs/ and boards/ at ${HW_DIR_ENV}={hw}; set {HW_DIR_ENV} to a hw/ folder of "
            "the repository, or unset it to use the one dpupose carries"
        )
    monkeypatch.setenv(HW_DIR_ENV, "")
    assert hw_dir() == Path(__file__).resolve().parents[1] / "hw"


def test_every_command_with_a_config_option_takes_a_path_and_the_docs_name_them_all():
    # dpu-configurations.md tells a user with a configuration of their own which commands take its path;
    # that list is the parser's commands with --config, and each one's help says it takes a path.
    import argparse

    from dpupose.cli import build_parser

    def commands(parser, prefix=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, (*prefix, name))
            elif "--config" in action.option_strings:
                yield " ".join(prefix), action

    found = dict(commands(build_parser()))
    assert {"dpu fit", "hw build", "split"} <= set(found)
    for name, action in found.items():
        assert action.metavar == "NAME|PATH" and ".toml path" in action.help, (name, action.help)
    text = (Path(__file__).resolve().parents[1] / "docs" / "dpu-configurations.md").read_text()
    para = re.search(r"Your own configuration: (.*?)\n\n", text, re.S)
    assert para, "dpu-configurations.md says how to use a configuration of one's own"
    (listed,) = re.findall(r"wherever a\s+command takes `--config` \((.*?)\)", para.group(1), re.S)
    documented = set()
    for group in re.findall(r"`dpupose ([^`]+)`", listed):
        words = group.split()
        documented |= {" ".join([*words[:-1], last]) for last in words[-1].split("|")}
    assert documented == set(found)
