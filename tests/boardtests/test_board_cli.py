"""`dpupose sdcard` from the command line, and the progress bar."""

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from boardtests.helpers import IMAGE_SIZE, OLD_CARD, needs_image_tools, sha256
from dpupose.board.progress import Progress, progress_wanted

REPO = Path(__file__).resolve().parents[2]


def test_group_without_action_prints_its_help(cli, capsys):
    assert cli(["sdcard"]) == 2
    out = capsys.readouterr().out
    for action in ("flash", "verify", "stage", "ls"):
        assert action in out


@needs_image_tools
def test_flash_to_file_from_the_command_line(image, tmp_path, cli, capsys):
    out = tmp_path / "card.img"
    assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-bmaptool", "--no-progress"]) == 0
    assert sha256(out) == sha256(image)
    assert f"{IMAGE_SIZE / 1024**2:.1f} MiB read back and verified" in capsys.readouterr().out


@needs_image_tools
def test_overwriting_without_a_terminal_needs_yes(image, tmp_path, cli, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # not a terminal
    out = tmp_path / "card.img"
    out.write_bytes(OLD_CARD)
    assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-bmaptool"]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert out.read_bytes() == OLD_CARD
    assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-bmaptool", "--yes"]) == 0
    assert sha256(out) == sha256(image)


@needs_image_tools
def test_end_of_input_at_the_prompt_is_a_no(image, tmp_path, cli, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal(""))  # Ctrl-D: input() raises EOFError
    out = tmp_path / "card.img"
    out.write_bytes(OLD_CARD)
    assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-bmaptool"]) == 2
    assert "not confirmed: nothing was written" in capsys.readouterr().err
    assert out.read_bytes() == OLD_CARD


@needs_image_tools
def test_stage_from_the_command_line_says_how_to_run_it(image, overlay, model, wheel, tmp_path, cli, capsys):
    import json

    plan = json.loads((model / "plan.json").read_text())
    del plan["subgraphs"][0]["xmodel"]  # no compiled DPU part: the board runs it on the CPU
    (model / "plan.json").write_text(json.dumps(plan))
    args = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*args, "--out", str(tmp_path / "staged.img"), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("note: the split plan in ") and "dpu0" in out[1]
    assert out[-1].startswith("on the board, after the first boot: sudo bash -c ") and "--backend cpu" in out[-1]


def test_stage_options_are_exclusive(cli, capsys):
    with pytest.raises(SystemExit):
        cli(["sdcard", "stage", "x.img", "--overlay", "o", "--model", "m", "--out", "y.img", "--in-place"])
    assert "not allowed with" in capsys.readouterr().err


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_shows_fraction_and_throughput(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    now = [100.0]
    stream = Tty()
    bar = Progress(8 * 1024**2, "write ", enabled=True, stream=stream, clock=lambda: now[0], interval=0.5)
    now[0] = 101.0
    bar.update(2 * 1024**2)  # 2 MiB after 1 s
    now[0] = 101.2
    bar.update(1024**2)  # within the interval: not drawn
    now[0] = 102.0
    bar.update(1024**2)  # 4 MiB after 2 s
    bar.close()
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert "25.0% 2.0 MiB / 8.0 MiB 2.0 MiB/s ETA 0:03" in frames[0]
    assert "50.0% 4.0 MiB / 8.0 MiB 2.0 MiB/s ETA 0:02" in frames[1]
    assert frames[2].endswith("\n")
    assert "[###############---------------]" in frames[1]


def test_progress_bar_fits_a_narrow_terminal_and_writes_plain_lines_elsewhere(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # the line is ~80 characters: wrapped, each redraw would add a line
    now = [0.0]
    tty = Tty()
    bar = Progress(4 * 1024**2, "write ", enabled=True, stream=tty, clock=lambda: now[0], interval=0.0)
    for _ in range(4):
        now[0] += 1.0
        bar.update(1024**2)
    bar.close()
    frames = tty.getvalue().split("\r")[1:]
    assert len(frames) == 5 and all(len(f.split("\x1b[K")[0]) == 39 for f in frames)
    # --progress into a file or pipe: whole lines, no carriage returns or escape codes.
    log = io.StringIO()
    bar = Progress(4 * 1024**2, "write ", enabled=True, stream=log, clock=lambda: now[0], file_interval=0.0)
    bar.update(1024**2)
    now[0] += 1.0
    bar.update(3 * 1024**2)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "25.0%" in lines[0] and "100.0%" in lines[1]  # the last one once
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_progress_into_a_log_is_a_line_every_half_minute_not_every_quarter_second():
    """`sdcard flash --progress 2>flash.log`: a 10-minute write at 1 MiB a chunk, 16 chunks a second, is
    19 lines (one per 30 s, 30 to 570) and the last one, where a redraw every 0.25 s wrote 2400."""
    now = [0.0]
    log = io.StringIO()
    total = 600 * 16 * 1024**2
    bar = Progress(total, "write ", enabled=True, stream=log, clock=lambda: now[0])
    for _ in range(600 * 16):
        now[0] += 1 / 16
        bar.update(1024**2)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 19 + 1, len(lines)
    assert "  5.0% 480.0 MiB / 9.4 GiB 16.0 MiB/s ETA 9:30" in lines[0], lines[0]  # 30 s of 600 s written
    assert "100.0%" in lines[-1] and "100.0%" not in lines[-2]


def test_progress_only_on_a_terminal_unless_asked():
    assert progress_wanted(None, Tty()) is True
    assert progress_wanted(None, io.StringIO()) is False
    assert progress_wanted(True, io.StringIO()) is True
    assert progress_wanted(False, Tty()) is False
    quiet = io.StringIO()
    bar = Progress(10, "x", enabled=False, stream=quiet)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_verbs_call_the_cli():
    def dry(*args):
        argv = ["make", "-s", "-n", "-o", ".venv/.installed", *args]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()

    lines = dry("sdcard", "IMAGE=p.img.xz", "DEVICE=/tmp/card.img", "OVERLAY=hw", "MODEL_DIR=m")
    assert ".venv/bin/dpupose sdcard stage 'p.img.xz' --overlay 'hw' --model 'm' --out build/sdcard/staged.img" in lines
    assert ".venv/bin/dpupose sdcard flash build/sdcard/staged.img --device '/tmp/card.img'" in lines
    lines = dry("sdcard", "IMAGE=p.img.xz", "DEVICE=/tmp/card.img")
    assert not any("sdcard stage" in line for line in lines)
    assert ".venv/bin/dpupose sdcard flash 'p.img.xz' --device '/tmp/card.img'" in lines
    lines = dry("deploy", "BOARD_HOST=192.168.3.1", "OVERLAY=hw", "MODEL_DIR=m")
    assert (
        lines[-1].rstrip() == ".venv/bin/dpupose deploy --host '192.168.3.1' --user 'xilinx' --overlay 'hw' --model 'm'"
    )
    lines = dry("deploy", "OVERLAY=hw", "MODEL_DIR=m", "DEPLOY_ARGS=--dry-run")
    assert lines[-1].endswith("--model 'm' --dry-run")
    lines = dry("run", "PLAN=p", "SOURCE=camera:0", "RUN_BACKEND=vart", "OVERLAY=hw", "RUN_ARGS=--max-frames 4")
    assert "--backend 'vart'" in " ".join(lines) and lines[-1].split() == ["--overlay", "'hw'", "--max-frames", "4"]


def test_a_failed_interactive_tool_points_at_its_own_messages():
    """Interactive tools (ssh with a password prompt) write to the terminal; the error says so instead of
    claiming the tool said nothing."""
    from dpupose.board.tools import run_tool
    from dpupose.errors import ToolFailed

    with pytest.raises(ToolFailed, match=r"failed \(exit 3\): sh's own messages are above"):
        run_tool(["sh", "-c", "echo 'Could not resolve hostname pynq' >&2; exit 3"], capture=False)
    with pytest.raises(ToolFailed, match=r"failed \(exit 3\): Could not resolve hostname pynq"):
        run_tool(["sh", "-c", "echo 'Could not resolve hostname pynq' >&2; exit 3"], capture=True)
    # A tool that colours its errors (bmaptool): the message keeps the words, not the escape codes.
    coloured = "printf '\\033[91mbmaptool: ERROR\\033[0m: checksum mismatch\\n\\n' >&2; exit 1"
    with pytest.raises(ToolFailed) as info:
        run_tool(["sh", "-c", coloured], capture=True)
    assert str(info.value).endswith("failed (exit 1): bmaptool: ERROR: checksum mismatch")


def test_flash_refuses_a_block_map_with_no_bmaptool(image, tmp_path, cli, capsys):
    out = tmp_path / "card.img"
    argv = ["sdcard", "flash", str(image), "--device", str(out), "--yes", "--no-bmaptool", "--bmap", "x.bmap"]
    assert cli(argv) == 2
    assert "--no-bmaptool turns off" in capsys.readouterr().err and not out.exists()


@needs_image_tools
def test_stage_names_a_missing_wheel_and_an_overlay_given_as_a_file(image, overlay, model, tmp_path, cli, capsys):
    out = str(tmp_path / "s.img")
    argv = ["sdcard", "stage", str(image), "--model", str(model), "--out", out]
    assert cli([*argv, "--overlay", str(overlay), "--wheel", str(tmp_path / "none.whl")]) != 0
    assert "none.whl does not exist" in capsys.readouterr().err
    assert cli([*argv, "--overlay", str(overlay / "dpu.bit")]) == 2
    assert "is a file: pass the folder" in capsys.readouterr().err


@needs_image_tools
def test_a_target_that_cannot_be_made_is_named_as_given(image, overlay, model, wheel, cli, capsys):
    # /proc takes no new files: the error names the path given, not the temporary copy beside it.
    assert cli(["sdcard", "flash", str(image), "--device", "/proc/dpupose.img", "--yes", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot use /proc/dpupose.img:" in err and ".partial" not in err
    argv = ["sdcard", "stage", str(image), "--overlay", str(overlay), "--model", str(model), "--wheel", str(wheel)]
    assert cli([*argv, "--out", "/proc/dpupose.img", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot use /proc/dpupose.img:" in err and ".partial" not in err


@needs_image_tools
def test_the_prompt_takes_yes_in_any_case_and_nothing_else(image, tmp_path, cli, capsys, monkeypatch):
    out = tmp_path / "card.img"
    for answer, code in (("y\n", 2), ("yes please\n", 2), (" YES \n", 0)):
        out.write_bytes(OLD_CARD)
        monkeypatch.setattr("sys.stdin", Tty(answer))
        assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-bmaptool", "--no-progress"]) == code
        assert (sha256(out) == sha256(image)) is (code == 0), answer
    assert "not confirmed: nothing was written" in capsys.readouterr().err


@needs_image_tools
def test_flash_without_bmaptool_installed_uses_the_built_in_copy(image, tmp_path, cli, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bmaptool (nor anything else)
    out = tmp_path / "card.img"
    assert cli(["sdcard", "flash", str(image), "--device", str(out), "--no-progress"]) == 0
    assert f"wrote pynq.img to {out} (stream, " in capsys.readouterr().out
    assert sha256(out) == sha256(image)
