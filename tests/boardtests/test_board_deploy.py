"""Deployment command lines and flow, against a recording fake of the command runner (no network)."""

import hashlib
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from boardtests.helpers import FINGERPRINT, xmodel_bytes
from dpupose.board import deploy as deploymod
from dpupose.board.artifacts import compare_fingerprints
from dpupose.board.deploy import Remote, deploy, install_argv, move_into_place_argv, rsync_argv, scp_argvs
from dpupose.board.tools import CommandRunner
from dpupose.cli import main
from dpupose.errors import ArtifactError, DeviceError, FingerprintMismatch, ToolFailed, ToolNotFoundError, UsageError

SSH_ARGV = [
    "ssh",
    "-o",
    "ControlMaster=auto",
    "-o",
    "ControlPath=%d/.ssh/dpupose-%C",
    "-o",
    "ControlPersist=120",
]
SSH = shlex.join(SSH_ARGV)
WHEEL = "dpupose-0.1.0-py3-none-any.whl"


@dataclass
class RecordingRunner(CommandRunner):
    """Runs nothing; records each command line; answers `cat` of the board's JSON files from `files`."""

    files: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def run(self, argv, *, capture=False, check=True):
        line = shlex.join(argv)
        self.calls.append(line)
        code, out = 0, ""
        if argv[0] == "ssh" and argv[-1].startswith("cat "):
            path = shlex.split(argv[-1])[1]
            code, out = (0, self.files[path]) if path in self.files else (1, "")
        if check and code:
            raise ToolFailed(argv, code, "No such file")
        return subprocess.CompletedProcess(argv, code, out, "")


def board_files(overlay_fp=FINGERPRINT, plan_fp=FINGERPRINT):
    files = {}
    if overlay_fp is not None:
        files["/home/xilinx/dpupose/overlay/arch.json"] = json.dumps({"fingerprint": overlay_fp})
    if plan_fp is not None:
        files["/home/xilinx/dpupose/model/plan.json"] = json.dumps({"fingerprint": plan_fp})
    return files


@pytest.fixture
def tools_present(monkeypatch, tmp_path):
    monkeypatch.setattr(deploymod, "require_tool", lambda name: f"/usr/bin/{name}")
    home = tmp_path / "local-home"  # ~/.ssh is made here, not in the home of whoever runs the tests
    home.mkdir()
    monkeypatch.setattr(deploymod, "local_home", lambda: home)


def test_command_lines_are_exact():
    remote = Remote("pynq")
    assert shlex.join(install_argv(remote, WHEEL)) == (
        f"{SSH} -t xilinx@pynq 'sudo bash /home/xilinx/dpupose/board_setup.sh /home/xilinx/dpupose/wheels/{WHEEL}'"
    )
    root = Path("/tmp/x/dpupose")
    assert rsync_argv(Remote("192.168.3.1", "me"), root) == [
        "rsync", "-rtz", "--delete", "-e", SSH,
        "/tmp/x/dpupose/overlay", "/tmp/x/dpupose/model", "/tmp/x/dpupose/wheels",
        "/tmp/x/dpupose/board_setup.sh", "/tmp/x/dpupose/manifest.json", "/tmp/x/dpupose/SHA256SUMS",
        "me@192.168.3.1:/home/xilinx/dpupose/.incoming/",
    ]  # fmt: skip
    clear, copy = scp_argvs(remote, root)
    assert shlex.join(clear) == (
        f"{SSH} xilinx@pynq 'rm -rf /home/xilinx/dpupose/.incoming && mkdir -p /home/xilinx/dpupose/.incoming'"
    )
    assert copy[:8] == ["scp", *SSH_ARGV[1:], "-r"]
    assert copy[-1] == "xilinx@pynq:/home/xilinx/dpupose/.incoming/"


def test_deploy_runs_the_steps_in_order(overlay, model, wheel, tools_present):
    runner = RecordingRunner(files=board_files())
    lines = []
    report = deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=lines.append, use_rsync=True)
    calls = runner.calls
    assert calls[0] == f"{SSH} xilinx@pynq 'mkdir -p /home/xilinx/dpupose/.incoming'"
    assert calls[1].startswith(f"rsync -rtz --delete -e {shlex.quote(SSH)} ")
    assert calls[1].endswith(" xilinx@pynq:/home/xilinx/dpupose/.incoming/")
    # The copy is checked before it replaces anything or is installed.
    assert calls[2] == (
        f"{SSH} xilinx@pynq 'cd /home/xilinx/dpupose/.incoming && sha256sum --check --quiet SHA256SUMS'"
    )
    assert calls[3] == shlex.join(move_into_place_argv(Remote("pynq")))
    assert calls[4] == shlex.join(install_argv(Remote("pynq"), wheel.name))
    assert calls[5:] == [
        f"{SSH} xilinx@pynq 'cat /home/xilinx/dpupose/overlay/arch.json'",
        f"{SSH} xilinx@pynq 'cat /home/xilinx/dpupose/model/plan.json'",
    ]
    assert report.deployed == f"on the board: fingerprint {FINGERPRINT} matches (overlay and split plan)"
    assert lines[0] == f"fingerprint {FINGERPRINT} matches (overlay and split plan)"
    assert lines[-1].startswith("run it on the board: ssh -t xilinx@pynq ")
    assert (
        "dpupose run --backend vart --plan /home/xilinx/dpupose/model --overlay /home/xilinx/dpupose/overlay"
        in lines[-1]
    )


def test_the_laid_out_folder_holds_what_sha256sum_checks(overlay, model, wheel, tools_present, monkeypatch):
    seen = {}

    class Copying(RecordingRunner):
        def run(self, argv, *, capture=False, check=True):
            if argv[0] == "rsync":  # look at the folder before it is deleted
                root = Path(argv[5]).parent
                seen["sums"] = subprocess.run(
                    ["sha256sum", "--check", "--quiet", "SHA256SUMS"],
                    cwd=root,
                    capture_output=True,
                    text=True,
                )
                seen["names"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
            return super().run(argv, capture=capture, check=check)

    (model / ".ipynb_checkpoints").mkdir()  # hidden files and folders stay behind
    (model / ".ipynb_checkpoints" / "notes.ipynb").write_text("{}")
    (model / ".DS_Store").write_bytes(bytes(8))
    deploy("pynq", overlay, model, wheel=wheel, runner=Copying(files=board_files()), echo=print, use_rsync=True)
    assert seen["sums"].returncode == 0, seen["sums"].stdout
    assert seen["names"] == sorted(
        [
            "SHA256SUMS", "board_setup.sh", "manifest.json",
            "model/cpu/head part.onnx", "model/dpu0.onnx", "model/dpu_part.xmodel", "model/plan.json",
            "overlay/arch.json", "overlay/dpu.bit", "overlay/dpu.hwh", "overlay/dpu.xclbin",
            f"wheels/{wheel.name}",
        ]
    )  # fmt: skip


def test_dry_run_prints_and_runs_nothing(overlay, model, cli, capsys, monkeypatch):
    monkeypatch.setattr(deploymod, "have_tool", lambda name: name == "rsync")
    assert cli(["deploy", "--host", "pynq", "--overlay", str(overlay), "--model", str(model), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"fingerprint {FINGERPRINT} matches (overlay and split plan)"
    assert out[1] == f"{SSH} xilinx@pynq 'mkdir -p /home/xilinx/dpupose/.incoming'"
    assert out[2].startswith("rsync -rtz --delete")
    assert out[3].endswith("sha256sum --check --quiet SHA256SUMS'")
    assert out[4] == shlex.join(move_into_place_argv(Remote("pynq")))
    assert out[5] == shlex.join(install_argv(Remote("pynq"), WHEEL))
    assert out[6].startswith("then, to run it: ssh -t xilinx@pynq ") and "--backend vart" in out[6]
    assert len(out) == 7


@pytest.mark.parametrize(
    "name", ["dpupose-0.1 $(touch ran);x.whl", "dpupose-0.1.0-py3-none-any;id.whl", "dpupose-0.1.whl"]
)
def test_a_wheel_whose_name_is_no_wheel_name_is_refused_before_anything_runs(overlay, model, wheel, tmp_path, name):
    # The name went unquoted into `sudo bash board_setup.sh WHEEL` on the board (and pip takes no such name).
    odd = tmp_path / name
    shutil.copyfile(wheel, odd)
    runner = RecordingRunner()
    with pytest.raises(ArtifactError, match=re.escape(f"{name!r} is not a dpupose wheel's name")):
        deploy("pynq", overlay, model, wheel=odd, dry_run=True, runner=runner, echo=print)
    assert runner.calls == []


def test_a_wheel_given_by_a_link_of_another_name_goes_to_the_board_under_its_own(overlay, model, wheel, tmp_path):
    """`ln -s dpupose-0.1.0-py3-none-any.whl latest.whl` (a common way to keep one) was refused as no wheel's name;
    the file it leads to is checked and copied, under the name pip reads. A link to a renamed copy is still refused."""
    kept = tmp_path / "dist"
    kept.mkdir()
    shutil.copyfile(wheel, kept / wheel.name)
    (kept / "latest.whl").symlink_to(wheel.name)
    said: list[str] = []
    deploy("pynq", overlay, model, wheel=kept / "latest.whl", dry_run=True, runner=RecordingRunner(), echo=said.append)
    assert shlex.join(install_argv(Remote("pynq"), wheel.name)) in said
    shutil.copyfile(wheel, kept / "renamed.whl")
    (kept / "other.whl").symlink_to("renamed.whl")
    with pytest.raises(ArtifactError, match=re.escape("'other.whl' is not a dpupose wheel's name")):
        deploy("pynq", overlay, model, wheel=kept / "other.whl", dry_run=True, runner=RecordingRunner(), echo=print)


def test_a_link_whose_own_name_is_a_wheel_s_is_taken_by_that_name(overlay, model, wheel, tmp_path):
    """wheel_file follows only a link whose own name is no wheel's: a link named as a wheel is the name the user
    gave, which pip on the board reads, so it is checked as it is; leading to a wheel of another version it is
    refused as pip would refuse that file, not swapped silently for the wheel it leads to."""
    from dpupose.board.wheel import wheel_file

    version = wheel.name.split("-")[1]
    other = tmp_path / "dpupose-9.9.9-py3-none-any.whl"
    other.symlink_to(wheel)
    assert wheel_file(other) == other and wheel_file(wheel) == wheel
    message = f"its METADATA gives version '{version}' where its file name gives '9.9.9'"
    with pytest.raises(ArtifactError, match=re.escape(message)):
        deploy("pynq", overlay, model, wheel=other, dry_run=True, runner=RecordingRunner(), echo=print)
    same = tmp_path / wheel.name  # a link of the wheel's own name: the same name either way
    same.symlink_to(wheel)
    said: list[str] = []
    deploy("pynq", overlay, model, wheel=same, dry_run=True, runner=RecordingRunner(), echo=said.append)
    assert shlex.join(install_argv(Remote("pynq"), wheel.name)) in said


def test_the_wheel_path_is_one_word_for_the_board_s_shell():
    # A name that check_wheel refuses still reaches board_setup.sh as one argument, not as shell code.
    command = install_argv(Remote("pynq"), "dpupose-0.1 $(x);y.whl")[-1]
    assert shlex.split(command) == [
        "sudo",
        "bash",
        "/home/xilinx/dpupose/board_setup.sh",
        "/home/xilinx/dpupose/wheels/dpupose-0.1 $(x);y.whl",
    ]


@pytest.mark.parametrize(
    ("host", "user", "message"),
    [
        ("", "xilinx", "--host '' is empty"),  # was xilinx@: in every command line
        ("a b", "xilinx", "--host 'a b' has blanks"),
        ("xilinx@pynq", "xilinx", "--host 'xilinx@pynq' holds '@'"),  # was xilinx@xilinx@pynq
        ("pynq", "-oProxyCommand=x", "--user '-oProxyCommand=x' starts with '-'"),  # an ssh option
        ("pynq", "", "--user '' is empty"),
    ],
)
def test_a_host_or_user_ssh_would_misread_is_refused(overlay, model, host, user, message):
    runner = RecordingRunner()
    with pytest.raises(UsageError, match=re.escape(message)):
        deploy(host, overlay, model, user=user, dry_run=True, runner=runner, echo=print)
    assert runner.calls == []


@pytest.mark.parametrize(
    ("host", "user", "given", "odd"),
    [
        ("pynq;reboot", "xilinx", "--host 'pynq;reboot'", "';'"),
        ("$(reboot)", "xilinx", "--host '$(reboot)'", "'$' '(' ')'"),
        ("pynq", "xilinx`reboot`", "--user 'xilinx`reboot`'", "'`'"),
        ("pynq", "o'brien", '--user "o\'brien"', '"\'"'),
        ("fe80::1%eth0;reboot", "xilinx", "--host 'fe80::1%eth0;reboot'", "';'"),  # an IPv6 address's zone too
    ],
)
def test_a_host_or_user_a_shell_would_read_is_refused(overlay, model, host, user, given, odd, capsys):
    """The printed run command and hints name the login unquoted, and ssh puts %h and %r into the shell line
    of a ProxyCommand: a pasted `ssh -t xilinx@pynq;reboot ...` runs reboot here, were such a name taken."""
    runner = RecordingRunner()
    with pytest.raises(UsageError) as exc:
        deploy(host, overlay, model, user=user, dry_run=True, runner=runner, echo=print)
    assert str(exc.value).startswith(
        f"{given} holds {odd}: a board's name, address or login holds only letters, digits, '.', '-' and '_'"
    )
    assert runner.calls == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize("host", ["pynq", "pynq-2.local", "192.168.3.1", "my_board", "fe80::1%eth0"])
def test_an_ordinary_host_is_taken(overlay, model, host):
    """Taken as given: every command goes to xilinx@HOST (scp's copy to an IPv6 address in brackets)."""
    report = deploy(host, overlay, model, dry_run=True, runner=RecordingRunner(), echo=lambda _: None)
    copy_to = f"xilinx@[{host}]" if ":" in host else f"xilinx@{host}"
    assert [argv[0] for argv in report.commands] == ["ssh", "ssh", "scp", "ssh", "ssh", "ssh"]
    for argv in report.commands:
        if argv[0] == "ssh":
            assert argv[-2] == f"xilinx@{host}", argv
        else:
            assert argv[-1] == f"{copy_to}:/home/xilinx/dpupose/.incoming/", argv


@pytest.mark.parametrize("name", ["notes\n0123  dpu0.onnx", 'say "hi".txt', "caf\udce9.txt", "rub\x7fout.txt"])
def test_a_model_file_name_the_board_copy_cannot_carry_is_refused_before_anything_runs(overlay, model, name):
    """SHA256SUMS names one file a line: a name with a line break gave `sha256sum -c` on the board a line of
    its own, the check failed after the copy; a name that is not UTF-8 stopped laying out with a traceback."""
    import os

    os.close(os.open(os.fsencode(model / "cpu") + b"/" + os.fsencode(name), os.O_CREAT | os.O_WRONLY, 0o644))
    runner = RecordingRunner()
    with pytest.raises(ArtifactError, match=r"holds a file named 'cpu/.*which the board's copy cannot name: rename it"):
        deploy("pynq", overlay, model, dry_run=True, runner=runner, echo=lambda _: None)
    assert runner.calls == []


@pytest.mark.parametrize("given", ["fe80::1%eth0", "[fe80::1%eth0]"])
def test_an_ipv6_host_is_bare_for_ssh_and_bracketed_for_scp_and_rsync(overlay, model, given, tmp_path):
    """scp and rsync end the host at its first ':' (xilinx@fe80::1:/path went to a host 'fe80', and '::'
    is rsync's daemon syntax); ssh keeps brackets as part of the name. Both spellings of the address work."""
    runner = RecordingRunner()
    for rsync in (True, False):
        report = deploy(given, overlay, model, dry_run=True, runner=runner, echo=lambda _: None, use_rsync=rsync)
        ssh_logins = [argv[len(SSH_ARGV) + ("-t" in argv)] for argv in report.commands if argv[0] == "ssh"]
        assert ssh_logins and set(ssh_logins) == {"xilinx@fe80::1%eth0"}
        copy = next(argv for argv in report.commands if argv[0] in ("rsync", "scp"))
        assert copy[-1] == "xilinx@[fe80::1%eth0]:/home/xilinx/dpupose/.incoming/"
    if shutil.which("scp"):  # how OpenSSH's scp reads that target: the host and login it hands to ssh
        fake_ssh = tmp_path / "ssh"
        fake_ssh.write_text(f'#!/bin/sh\necho "$@" > {shlex.quote(str(tmp_path / "ssh.log"))}\nexit 1\n')
        fake_ssh.chmod(0o755)
        subprocess.run(["scp", "-S", str(fake_ssh), "-r", str(overlay), copy[-1]], capture_output=True, timeout=30)
        words = (tmp_path / "ssh.log").read_text().split()
        assert words[words.index("-l") + 1] == "xilinx" and "fe80::1%eth0" in words


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("pynq:2222", "--host 'pynq:2222' holds ':' but is not an IPv6 address (a port goes in ~/.ssh/config"),
        ("192.168.3.1:22", "holds ':' but is not an IPv6 address"),
        ("[pynq]", "--host '[pynq]' has brackets, which go only around an IPv6 address"),
        ("[fe80::1", "has brackets"),
    ],
)
def test_a_host_with_a_port_or_stray_brackets_is_refused(overlay, model, host, message):
    runner = RecordingRunner()
    with pytest.raises(UsageError, match=re.escape(message)):
        deploy(host, overlay, model, dry_run=True, runner=runner, echo=print)
    assert runner.calls == []


def test_fingerprint_mismatch_stops_before_copying(overlay, model, wheel, tools_present):
    (model / "plan.json").write_text(
        json.dumps({**json.loads((model / "plan.json").read_text()), "fingerprint": "0x1000020F6014407"})
    )
    runner = RecordingRunner()
    with pytest.raises(FingerprintMismatch, match=r"0x1000020F6014407.*0x101000016010407"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print)
    assert runner.calls == []


def test_mismatch_on_the_board_is_reported(overlay, model, wheel, tools_present):
    runner = RecordingRunner(files=board_files(overlay_fp="0x42"))
    with pytest.raises(FingerprintMismatch, match=r"on the board: .*0x42"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=False)


def test_an_arch_json_naming_a_vitis_ai_target_is_compared_by_that_targets_fingerprint(
    overlay, model, wheel, tools_present
):
    # The Vitis AI image's arch.json form; DPUCZDX8G_ISA1_B4096 in Vitis AI 2.5 is 0x101000016010407.
    (overlay / "arch.json").write_text('{"target": "DPUCZDX8G_ISA1_B4096"}')
    board = board_files()
    board["/home/xilinx/dpupose/overlay/arch.json"] = '{"target": "DPUCZDX8G_ISA1_B4096"}'
    report = deploy("pynq", overlay, model, wheel=wheel, runner=RecordingRunner(files=board), echo=print)
    assert report.verdict == f"fingerprint {FINGERPRINT} matches (overlay and split plan)"
    assert report.deployed == f"on the board: fingerprint {FINGERPRINT} matches (overlay and split plan)"

    (overlay / "arch.json").write_text('{"target": "DPUCZDX8G_ISA1_B1600"}')
    runner = RecordingRunner(files=board)
    with pytest.raises(
        FingerprintMismatch, match=r"made for DPU fingerprint 0x101000016010407 .* has 0x101000016010404"
    ):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print)
    assert runner.calls == []
    (overlay / "arch.json").write_text('{"target": "DPUCZDX8G_ISA0_B4096_MAX_BG2"}')
    with pytest.raises(ArtifactError, match=r"names target 'DPUCZDX8G_ISA0_B4096_MAX_BG2'.*xdputil query"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print)
    assert runner.calls == []


def test_missing_fingerprints_are_said(overlay, model, wheel, tools_present):
    (overlay / "arch.json").unlink()
    lines = []
    runner = RecordingRunner(files=board_files(overlay_fp=None))
    report = deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=lines.append, use_rsync=True)
    assert "the overlay" in lines[0] and "has no arch.json" in lines[0]
    assert report.deployed.startswith("on the board: fingerprint not checked")

    verdict = compare_fingerprints(None, None, overlay=str(overlay), model=str(model))
    assert "no arch.json fingerprint and the model no split plan fingerprint" in verdict


def test_a_model_folder_without_a_plan_is_refused_before_anything_runs(overlay, model, tmp_path, capsys):
    # `dpupose run` on the board reads plan.json and nothing else: a folder without one was deployed (and
    # staged) with a `--backend vart` run command the board then refused ("no split plan").
    (model / "plan.json").unlink()
    runner = RecordingRunner(files=board_files(overlay_fp=None, plan_fp=None))
    with pytest.raises(ArtifactError) as e:
        deploy("pynq", overlay, model, dry_run=True, runner=runner, echo=print)
    assert str(e.value) == (
        f"model folder {model} has no plan.json, so `dpupose run` on the board could not run it: pass the split "
        "plan folder `dpupose split` wrote (the shipped model's: models/dpupose-synth/split)"
    )
    assert runner.calls == []
    # A model card's folder, its plan one level down, gets that folder.
    card = tmp_path / "card"
    (card / "split").mkdir(parents=True)
    (card / "split" / "plan.json").write_text("{}")
    (card / "model.pt").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=rf"has no plan\.json, .*: pass the split plan folder inside it, "
                       rf"{re.escape(str(card / 'split'))}$"):  # fmt: skip
        deploy("pynq", overlay, card, dry_run=True, runner=runner, echo=print)
    # A `dpupose quantize` folder, the step before the split, gets the split command.
    quantized = tmp_path / "q"
    quantized.mkdir()
    for name in ("model_qdq.onnx", "model_fp32.onnx", "summary.json"):
        (quantized / name).write_bytes(b"x")
    argv = ["deploy", "--host", "pynq", "--overlay", str(overlay), "--model", str(quantized), "--dry-run"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"dpupose: error: model folder {quantized} has no plan.json, so `dpupose run` on the board could not run "
        f"it: it is a `dpupose quantize` folder; split it first, `dpupose split {quantized / 'model_qdq.onnx'} "
        "--out DIR --optimize`, and pass DIR\n"
    )


def test_missing_tool_is_named_before_anything_runs(overlay, model, wheel, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ToolNotFoundError, match=r"'rsync' is not installed.*apt-get install rsync"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls == []


def parse_run_command(line: str):
    import argparse

    from dpupose.board import layout
    from dpupose.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    outer = shlex.split(line)
    assert outer[:3] == ["sudo", "bash", "-c"]
    inner = shlex.split(outer[3])
    assert inner[:6] == ["source", layout.XRT_PROFILE, "&&", "source", layout.PYNQ_VENV_PROFILE, "&&"]
    return parser.parse_args(inner[inner.index("dpupose") + 1 :])


def test_printed_run_command_starts_dpupose_in_the_xrt_environment(tmp_path):
    """The inner command as `sudo bash -c` runs it: from a clean environment (sudo's env_reset keeps no
    XILINX_XRT), with stand-ins for PYNQ 3.0.1's profile scripts. dpupose must start with XILINX_XRT set:
    without it pynq registers no device and the overlay cannot load."""
    from dpupose.board import layout

    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    dpupose = venv_bin / "dpupose"
    dpupose.write_text('#!/bin/sh\necho "XILINX_XRT=${XILINX_XRT:-unset} $*" > "$0.log"\n')
    dpupose.chmod(0o755)
    xrt = tmp_path / "xrt_setup.sh"
    xrt.write_text("export XILINX_XRT=/usr\n")  # PYNQ 3.0.1's, verbatim
    venv = tmp_path / "pynq_venv.sh"
    venv.write_text(f'export PATH="{venv_bin}:$PATH"\n')  # what sourcing the venv's bin/activate does here
    outer = shlex.split(layout.run_command("vart"))
    inner = outer[3].replace(layout.XRT_PROFILE, str(xrt)).replace(layout.PYNQ_VENV_PROFILE, str(venv))
    subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", "bash", "-c", inner], check=True, timeout=30)
    assert (tmp_path / "venv" / "bin" / "dpupose.log").read_text().startswith("XILINX_XRT=/usr run --backend vart ")


@pytest.mark.parametrize("backend", ["vart", "cpu"])
def test_printed_run_command_is_accepted_by_dpupose_run(backend):
    from dpupose.board import layout

    args = parse_run_command(layout.run_command(backend))
    overlay = str(layout.OVERLAY_DIR) if backend == "vart" else None  # ONNX Runtime needs no overlay
    assert (args.backend, args.plan, args.overlay) == (backend, str(layout.MODEL_DIR), overlay)


def test_a_plan_without_a_compiled_xmodel_is_run_on_the_cpu(overlay, model, wheel, tools_present):
    plan = json.loads((model / "plan.json").read_text())
    del plan["subgraphs"][0]["xmodel"]  # as `dpupose split` writes it, before Vitis AI compiles the DPU part
    (model / "plan.json").write_text(json.dumps(plan))
    lines = []
    report = deploy("pynq", overlay, model, wheel=wheel, runner=RecordingRunner(files=board_files()), echo=lines.append)
    assert lines[1].startswith("note: ") and "no compiled .xmodel for DPU subgraph dpu0" in lines[1]
    assert parse_run_command(report.run_command).backend == "cpu"
    assert "--backend cpu" in lines[-1]


def test_the_shipped_plan_has_no_xmodel_so_it_runs_on_the_cpu():
    from dpupose.board.artifacts import board_backend

    shipped = Path(__file__).resolve().parents[2] / "models" / "dpupose-synth" / "split"
    backend, note = board_backend(shipped)
    assert backend == "cpu" and "dpu0" in note


def test_folders_are_checked_before_the_wheel_is_built(overlay, model, monkeypatch):
    def no_build(*_args, **_kw):
        raise AssertionError("the wheel was built before the overlay was checked")

    monkeypatch.setattr(deploymod, "build_wheel", no_build)
    (overlay / "dpu.hwh").unlink()
    with pytest.raises(ArtifactError, match=r"lacks dpu\.hwh"):
        deploy("pynq", overlay, model, runner=RecordingRunner(), echo=print)


class LocalBoard(CommandRunner):
    """Runs deploy's commands here, with `board` standing in for the board's /home/xilinx: the ssh
    commands with bash, the copy with the real rsync; `drop` cuts the copy short after the model folder."""

    def __init__(self, board: Path, drop: bool = False):
        self.board, self.drop = board, drop

    def here(self, text: str) -> str:
        return text.replace("/home/xilinx/", f"{self.board}/xilinx/")

    def run(self, argv, *, capture=False, check=True):
        if argv[0] == "ssh" and "sudo" in argv[-1]:
            return subprocess.CompletedProcess(argv, 0, "", "")  # the install needs a board
        if argv[0] == "ssh":
            proc = subprocess.run(["bash", "-c", self.here(argv[-1])], capture_output=True, text=True)
        else:
            assert argv[0] == "rsync"
            sources, dest = argv[5:-1], self.here(argv[-1].partition(":")[2])
            if self.drop:  # the connection drops once model/ is across
                sources = [s for s in sources if Path(s).name in ("SHA256SUMS", "board_setup.sh", "model")]
            proc = subprocess.run(["rsync", "-rt", "--delete", *sources, dest], capture_output=True, text=True)
            if self.drop:
                proc.returncode = 12
        if check and proc.returncode:
            raise ToolFailed(argv, proc.returncode, proc.stderr)
        return proc


def board_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_a_copy_cut_short_leaves_the_deployed_model_as_it_was(overlay, model, wheel, tools_present, tmp_path):
    """A dropped connection mid-copy left model/ holding new and old files side by side (rsync wrote
    into the deployed folder), which `dpupose run` would load; the copy now goes beside it."""
    board = tmp_path / "board"
    (board / "xilinx").mkdir(parents=True)
    deployed = board / "xilinx" / "dpupose"
    deploy("pynq", overlay, model, wheel=wheel, runner=LocalBoard(board), echo=lambda _: None, use_rsync=True)
    first = board_tree(deployed)
    assert first["model/dpu0.onnx"] == (model / "dpu0.onnx").read_bytes()

    (model / "dpu0.onnx").write_bytes(b"a new subgraph")
    (model / "dpu_part.xmodel").write_bytes(xmodel_bytes("a new xmodel"))
    with pytest.raises(ToolFailed, match="exit 12"):
        deploy("pynq", overlay, model, wheel=wheel, runner=LocalBoard(board, drop=True), echo=print, use_rsync=True)
    assert board_tree(deployed / "model") == {k[6:]: v for k, v in first.items() if k.startswith("model/")}

    deploy("pynq", overlay, model, wheel=wheel, runner=LocalBoard(board), echo=lambda _: None, use_rsync=True)
    now = board_tree(deployed)
    assert now["model/dpu0.onnx"] == b"a new subgraph" and now["model/dpu_part.xmodel"] == xmodel_bytes("a new xmodel")
    assert sorted(p.name for p in deployed.iterdir()) == sorted(
        ["SHA256SUMS", "board_setup.sh", "manifest.json", "model", "overlay", "wheels"]
    )  # nothing left of the copy and the old folders


def test_the_folder_of_the_shared_connection_s_socket_is_made(tmp_path):
    # ControlPath %d/.ssh/dpupose-%C: without ~/.ssh every ssh call fails with "unix_listener: cannot bind".
    from dpupose.board.deploy import ensure_ssh_dir

    home = tmp_path / "home"
    home.mkdir()
    folder = ensure_ssh_dir(home)
    assert folder == home / ".ssh" and folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
    (folder / "known_hosts").write_text("kept\n")
    ensure_ssh_dir(home)  # one already there is left as it is
    assert (folder / "known_hosts").read_text() == "kept\n"


def test_deploy_makes_the_ssh_folder_before_the_first_command(
    overlay, model, wheel, tools_present, monkeypatch, tmp_path
):
    from dpupose.board import deploy as deploy_module

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(deploy_module, "local_home", lambda: home)

    class Checking(RecordingRunner):
        def run(self, argv, **kwargs):
            assert (home / ".ssh").is_dir(), "an ssh command ran before ~/.ssh existed"
            return super().run(argv, **kwargs)

    runner = Checking(files=board_files())
    deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=lambda _: None, use_rsync=True)
    assert runner.calls[0].startswith("ssh ")  # the check above ran, from the first command on


@pytest.mark.parametrize(("code", "hinted"), [(255, True), (1, False)])
def test_ssh_s_own_failure_says_what_to_check(overlay, model, wheel, tools_present, code, hinted):
    class Unreachable(RecordingRunner):
        def run(self, argv, *, capture=False, check=True):
            raise ToolFailed(argv, code, "Host key verification failed.")

    error = DeviceError if hinted else ToolFailed
    with pytest.raises(error) as info:
        deploy("pynq", overlay, model, wheel=wheel, runner=Unreachable(), echo=lambda _: None, use_rsync=True)
    assert ("ssh-keygen -R pynq" in str(info.value) and "ping pynq" in str(info.value)) == hinted
    assert "Host key verification failed." in str(info.value)


@pytest.mark.parametrize("version", [2, 7])
def test_a_plan_from_a_newer_dpupose_is_refused_before_anything_is_copied(overlay, model, wheel, version):
    # The board runs the plan with the dpupose deployed beside it (this version's), which refuses a plan
    # version it does not read: deploying would replace a working deployment with one that cannot run.
    plan = json.loads((model / "plan.json").read_text())
    plan["version"] = version
    (model / "plan.json").write_text(json.dumps(plan))
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ArtifactError, match=rf"is version {version}, written by a newer dpupose.*reads plan version 1"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls == []


def test_a_plan_with_a_file_from_another_split_is_refused_before_anything_is_copied(overlay, model, wheel):
    plan = json.loads((model / "plan.json").read_text())
    plan["subgraphs"][0]["sha256"] = "0" * 64  # dpu0.onnx is not the file the plan was split into
    (model / "plan.json").write_text(json.dumps(plan))
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ArtifactError, match=r"dpu0.onnx is not the file subgraph 'dpu0' was split into"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls == []  # the working deployment on the board is left as it was


def test_a_compiled_xmodel_cut_short_is_refused_before_anything_is_copied(overlay, model, wheel):
    # The plan records no sha256 of its .xmodel; `dpupose run --backend vart` on the board refuses one XIR cannot
    # parse, after the working deployment there was replaced.
    xmodel = model / "dpu_part.xmodel"
    xmodel.write_bytes(xmodel.read_bytes()[:1000])
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ArtifactError, match=r"dpu_part\.xmodel is not an xmodel XIR can read .*--backend vart"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls == []


def test_a_compiled_xmodel_other_than_the_one_split_recorded_is_refused_before_anything_is_copied(
    overlay, model, wheel, tools_present
):
    # Another compile copied over the plan's .xmodel (another checkpoint: the plan's fingerprint and tensors)
    # parses, and VART on the board would run it with wrong keypoints; split --xmodel records its sha256.
    xmodel = model / "dpu_part.xmodel"
    plan = json.loads((model / "plan.json").read_text())
    plan["subgraphs"][0]["xmodel_sha256"] = hashlib.sha256(xmodel.read_bytes()).hexdigest()
    (model / "plan.json").write_text(json.dumps(plan))
    recorded = xmodel.read_bytes()
    xmodel.write_bytes(xmodel_bytes("another compile", 150_000))
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ArtifactError) as err:
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert str(err.value) == (
        f"{model / 'plan.json'}: {xmodel} is not the .xmodel subgraph 'dpu0' was split with (sha256 differs: another "
        "compile copied over it, or a copy cut short), which VART would run with no error and wrong keypoints; copy "
        "the plan folder again, or split the model again the same way with --xmodel the .xmodel to use (`dpupose "
        f"split MODEL --out {model} --xmodel NAME.xmodel`, docs/quantization.md) (the board could not run this plan)"
    )
    assert runner.calls == []  # the working deployment on the board is left as it was
    xmodel.write_bytes(recorded)  # the one recorded is deployed
    deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls[1].startswith("rsync ")


def test_each_dpu_subgraph_s_compiled_xmodel_is_checked_not_only_the_first(overlay, model, wheel):
    # A plan split into two DPU subgraphs, each with its .xmodel: the second one cut short is refused as the
    # first is, before anything is copied.
    plan = json.loads((model / "plan.json").read_text())
    first, cpu = plan["subgraphs"]
    second = {**first, "name": "dpu1", "file": "dpu1.onnx", "xmodel": "dpu_part1.xmodel"}
    second["inputs"] = first["outputs"]
    second["outputs"] = [{**first["outputs"][0], "name": "features1"}]
    cpu["inputs"] = [{**cpu["inputs"][0], "name": "features1"}]
    plan["subgraphs"] = [first, second, cpu]
    (model / "plan.json").write_text(json.dumps(plan))
    shutil.copy(model / "dpu0.onnx", model / "dpu1.onnx")
    (model / "dpu_part1.xmodel").write_bytes(xmodel_bytes("tiny", 150_000)[:1000])
    runner = RecordingRunner(files=board_files())
    with pytest.raises(ArtifactError, match=r"dpu_part1\.xmodel is not an xmodel XIR can read .*--backend vart"):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)
    assert runner.calls == []


def test_an_ipv6_zone_is_one_percent_sign(overlay, model):
    # ssh expands %-tokens (%h, %r, %d) in a ProxyCommand or ControlPath: only the zone's one '%' is let through.
    runner = RecordingRunner()
    with pytest.raises(UsageError, match=re.escape("--host 'fe80::1%eth0%h' holds '%'")):
        deploy("fe80::1%eth0%h", overlay, model, dry_run=True, runner=runner, echo=print)
    assert runner.calls == []


@pytest.mark.parametrize("board_plan", [None, "0x42"])
def test_a_board_plan_that_is_not_the_deployed_one_says_the_copy_did_not_complete(
    overlay, model, wheel, tools_present, board_plan
):
    # Checked before the fingerprints: a plan missing on the board had the check skipped ("not checked").
    runner = RecordingRunner(files=board_files(plan_fp=board_plan))
    said = (
        rf"the split plan on the board has fingerprint {board_plan}, the deployed one {FINGERPRINT}: the copy did not"
    )
    with pytest.raises(ArtifactError, match=said):
        deploy("pynq", overlay, model, wheel=wheel, runner=runner, echo=print, use_rsync=True)


def test_a_board_plan_that_is_not_json_says_the_copy_did_not_complete(overlay, model, wheel, tools_present):
    # It said only '/home/xilinx/dpupose/model/plan.json on the board is not valid JSON'.
    files = {**board_files(), "/home/xilinx/dpupose/model/plan.json": '{"fingerprint": "0x1'}  # cut short
    with pytest.raises(ArtifactError) as info:
        deploy("pynq", overlay, model, wheel=wheel, runner=RecordingRunner(files=files), echo=print, use_rsync=True)
    assert str(info.value) == (
        "/home/xilinx/dpupose/model/plan.json on the board is not valid JSON: the copy did not complete; deploy again"
    )


def test_fingerprints_written_in_decimal_and_hex_are_one_number(overlay, model, wheel, tools_present):
    # 0x101000016010407 is 72339069383803911: an arch.json may give it either way.
    (overlay / "arch.json").write_text(json.dumps({"fingerprint": "72339069383803911"}))
    lines = []
    deploy("pynq", overlay, model, wheel=wheel, runner=RecordingRunner(files=board_files()), echo=lines.append)
    assert lines[0] == "fingerprint 72339069383803911 matches (overlay and split plan)"


def test_old_folders_left_by_a_move_cut_short_do_not_stop_the_next_move(tmp_path):
    """A connection dropped while the deployed folders were being moved aside leaves .previous/ holding some:
    the next move into place (run here by bash, the board's folder under tmp_path) clears it first."""
    deployed = tmp_path / "xilinx" / "dpupose"
    (deployed / ".previous" / "model").mkdir(parents=True)
    (deployed / ".previous" / "model" / "old.onnx").write_bytes(b"old")
    (deployed / "model").mkdir()
    (deployed / "model" / "old.onnx").write_bytes(b"old")
    incoming = deployed / ".incoming"
    for name in deploymod.TOP_LEVEL:
        if name in deploymod.FOLDERS:
            (incoming / name).mkdir(parents=True)
            (incoming / name / "new").write_text(name)
        else:
            (incoming / name).write_text(name)
    command = move_into_place_argv(Remote("pynq"))[-1].replace("/home/xilinx/", f"{tmp_path}/xilinx/")
    subprocess.run(["bash", "-c", command], check=True, capture_output=True)
    tree = {str(p.relative_to(deployed)) for p in deployed.rglob("*")}
    assert tree == {*deploymod.TOP_LEVEL, "overlay/new", "model/new", "wheels/new"}


def test_an_empty_model_folder_is_refused_before_anything_runs(overlay, tmp_path):
    empty = tmp_path / "empty"
    (empty / ".ipynb_checkpoints").mkdir(parents=True)  # only hidden files: nothing to copy
    (empty / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    runner = RecordingRunner()
    with pytest.raises(
        ArtifactError,
        match=rf"^--model {re.escape(str(empty))} is empty: give the split plan folder `dpupose split MODEL --out DIR` "
        "wrote$",
    ):
        deploy("pynq", overlay, empty, dry_run=True, runner=runner, echo=print)
    assert runner.calls == []


@pytest.mark.parametrize("plan", [None, "{", "[1, 2]"])
def test_a_folder_without_a_readable_plan_is_left_to_run_to_judge(tmp_path, plan):
    # board_backend: no plan, or one that does not parse, is vart (dpupose run says what is wrong with it);
    # check_model: a plan that is JSON of another shape is refused as no split plan, in one line
    from dpupose.board.artifacts import board_backend, check_model

    if plan is not None:
        (tmp_path / "plan.json").write_text(plan)
    assert board_backend(tmp_path) == ("vart", None)
    if plan == "[1, 2]":
        with pytest.raises(ArtifactError, match=r"plan\.json: not a split plan \(expected a JSON object\)"):
            check_model(tmp_path)
