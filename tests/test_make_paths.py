"""The make verbs pass each path variable to dpupose as one argument, whatever it holds (a recording stand-in
of .venv/bin/dpupose, run from a scratch folder so that nothing is written into the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

RECORDER = """#!{python}
import json, os, signal, sys
with open(os.environ["DPUPOSE_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
fail = os.environ.get("DPUPOSE_SWEEP_FAILS")
if fail and "--sweep" in sys.argv:  # half its JSON on stdout, then an error or a Ctrl-C
    print('{{"rows": [', flush=True)
    if fail == "sigint":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.killpg(0, signal.SIGINT)  # as the terminal does: to make, its shell and this process
    sys.exit(1)
"""


def make(tmp_path: Path, *assignments: str, env: dict[str, str] | None = None, rc: int = 0) -> list[list[str]]:
    """Run `make ASSIGNMENTS...` with dpupose recorded; returns its command lines (after `dpupose`)."""
    for name in ("pyproject.toml", "constraints.txt"):  # the stamp's prerequisites, older than the stamp
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (0, 0))
    (tmp_path / "stamp").touch()
    recorder = tmp_path / "dpupose"
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    calls.write_text("")
    argv = ["make", "-s", "-f", str(ROOT / "Makefile"), f"STAMP={tmp_path / 'stamp'}", f"DPUPOSE={recorder}"]
    env = {**os.environ, **(env or {}), "DPUPOSE_CALLS": str(calls)}
    proc = subprocess.run(
        [*argv, *assignments], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, start_new_session=True
    )
    assert proc.returncode == rc, proc.stderr
    return [json.loads(line) for line in calls.read_text().splitlines()]


def test_quantize_passes_paths_with_spaces_as_one_argument(tmp_path):
    calls = make(tmp_path, "quantize", "CHECKPOINT=my runs/best.pt", "DATA_ROOT=data sets/mpii", "QUANT_OUT=q out")
    assert calls == [
        ["quantize", "--checkpoint", "my runs/best.pt", "--calib-data", "synthetic", "--data-root", "data sets/mpii",
         "--out", "q out"]
    ]  # fmt: skip


def test_quantize_passes_its_other_options_on(tmp_path):
    # --num-calib and the rest had no way through make: a small --data-root failed with no way round but
    # calling dpupose quantize directly
    calls = make(tmp_path, "quantize", "CHECKPOINT=c.pt", "QUANT_ARGS=--num-calib 20 --seed 3")
    assert calls == [
        ["quantize", "--checkpoint", "c.pt", "--calib-data", "synthetic", "--out", "build/quantized/model",
         "--num-calib", "20", "--seed", "3"]
    ]  # fmt: skip


def test_hw_passes_a_configuration_path_with_spaces_as_one_argument(tmp_path):
    calls = make(tmp_path, "hw-check", "DPU=my configs/b1600.toml", "BOARD=ultra96v2", "DPU_TRD=dl/DPU TRD.tar.gz")
    assert calls == [
        ["hw", "check", "--config", "my configs/b1600.toml", "--board", "ultra96v2", "--trd", "dl/DPU TRD.tar.gz"]
    ]


def test_hw_with_an_empty_board_takes_the_configuration_s(tmp_path):
    # BOARD= on make's command line (BOARD=$(MY_BOARD) with it unset) was passed on as --board '', which dpupose
    # refuses; like DPU_TRD and BOARD_REPO, an empty one is left out: the configuration's board.
    calls = make(tmp_path, "hw-check", "DPU=u96v2-b1600-pynq", "BOARD=")
    assert calls == [["hw", "check", "--config", "u96v2-b1600-pynq"]]


def test_compare_takes_a_model_with_spaces_and_does_not_make_it(tmp_path):
    (tmp_path / "build" / "compare").mkdir(parents=True)
    calls = make(tmp_path, "compare", "MODEL=my models/dpu part.onnx")
    assert [c[:5] for c in calls] == [["dpu", "compare", "--board", "ultra96v2", "--model"]] * 2
    assert [c[5] for c in calls] == ["my models/dpu part.onnx"] * 2


@pytest.mark.parametrize(("fail", "rc"), [("exit", 2), ("sigint", -signal.SIGINT)])
def test_compare_failed_or_interrupted_in_its_sweep_leaves_no_part_file(tmp_path, fail, rc):
    folder = tmp_path / "build" / "compare"
    folder.mkdir(parents=True)
    (folder / "ultra96v2-sweep.json").write_text('{"an earlier": "sweep"}')
    calls = make(tmp_path, "compare", "MODEL=m.onnx", env={"DPUPOSE_SWEEP_FAILS": fail}, rc=rc)
    assert "--sweep" in calls[-1]  # it did fail in the sweep
    assert sorted(os.listdir(folder)) == ["ultra96v2-sweep.json"]  # no .tmp left beside it
    assert (folder / "ultra96v2-sweep.json").read_text() == '{"an earlier": "sweep"}'


def test_run_sdcard_and_deploy_pass_paths_with_spaces_as_one_argument(tmp_path):
    calls = make(tmp_path, "run", "PLAN=my plan", "SOURCE=clips/a b.mp4", "RUN_OUT=out dir")
    assert calls[0][:7] == ["run", "--plan", "my plan", "--source", "clips/a b.mp4", "--backend", "emulate"]
    assert calls[0][7:9] == ["--out", "out dir"]
    calls = make(tmp_path, "sdcard", "IMAGE=x y.img", "DEVICE=card copy.img")
    assert calls == [["sdcard", "flash", "x y.img", "--device", "card copy.img"]]
    calls = make(tmp_path, "deploy", "OVERLAY=hw out", "MODEL_DIR=my model")
    assert calls == [["deploy", "--host", "pynq", "--user", "xilinx", "--overlay", "hw out", "--model", "my model"]]


def test_sdcard_writes_an_image_file_on_dev_shm_without_sudo(tmp_path):
    # make sdcard ran the flash under sudo for any DEVICE under /dev/, so an ordinary user writing an image file
    # on /dev/shm (a tmpfs) was asked for a password and got a file owned by root. A card (/dev/sdb) still gets
    # sudo. Stand-ins: `id` says an ordinary user, `sudo` records its use and runs the command.
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "sudo").write_text(f'#!/bin/sh\necho sudo >> {tmp_path / "sudo.log"}\nexec "$@"\n')
    for tool in ("id", "sudo"):
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    calls = make(tmp_path, "sdcard", "IMAGE=x.img", "DEVICE=/dev/shm/card.img", env=env)
    assert calls == [["sdcard", "flash", "x.img", "--device", "/dev/shm/card.img"]]
    assert not (tmp_path / "sudo.log").exists()
    calls = make(tmp_path, "sdcard", "IMAGE=x.img", "DEVICE=/dev/sdb", env=env)
    assert calls == [["sdcard", "flash", "x.img", "--device", "/dev/sdb"]]
    assert (tmp_path / "sudo.log").read_text() == "sudo\n"


def test_a_variable_with_a_default_given_empty_is_its_default(tmp_path):
    # RUN_OUT=$(MY_OUT) with MY_OUT unset went to dpupose as --out '', refused as empty ('give a folder'), where
    # make help gives RUN_OUT=build/run; so did RUN_BACKEND, QUANT_OUT, BOARD_HOST, BOARD_USER, DPU, compare's
    # BOARD and MODEL. Each is its default, as an empty BOARD is for make hw.
    calls = make(tmp_path, "run", "PLAN=p", "SOURCE=s", "RUN_OUT=", "RUN_BACKEND=")
    assert calls == [
        ["run", "--plan", "p", "--source", "s", "--backend", "emulate", "--out", "build/run", "--pipeline"]
    ]
    calls = make(tmp_path, "quantize", "CHECKPOINT=c.pt", "QUANT_OUT=")
    assert calls == [
        ["quantize", "--checkpoint", "c.pt", "--calib-data", "synthetic", "--out", "build/quantized/model"]
    ]
    calls = make(tmp_path, "deploy", "OVERLAY=o", "MODEL_DIR=m", "BOARD_HOST=", "BOARD_USER=")
    assert calls == [["deploy", "--host", "pynq", "--user", "xilinx", "--overlay", "o", "--model", "m"]]
    calls = make(tmp_path, "hw-check", "DPU=")
    assert calls == [["hw", "check", "--config", "u96v2-b1600-pynq"]]
    (tmp_path / "build" / "compare").mkdir(parents=True)
    (tmp_path / "build" / "compare" / "pose_dpu.onnx").touch()
    calls = make(tmp_path, "compare", "BOARD=", "MODEL=")
    assert calls[0][:6] == ["dpu", "compare", "--board", "ultra96v2", "--model", "build/compare/pose_dpu.onnx"]
    assert (tmp_path / "build" / "compare" / "ultra96v2-sweep.json").exists()


def test_quotes_backticks_and_commas_in_a_path_stay_the_path_s(tmp_path):
    # Double quotes would end at a '"' and run a backtick's command; each value goes in single quotes (a ','
    # in it must not split make's $(call)).
    odd = 'clips/it\'s "a" `touch pwned`, $$HOME!.mp4'  # make reads '$$' as '$' (its own rule)
    calls = make(tmp_path, "run", "PLAN=my 'plan'", f"SOURCE={odd}", "RUN_BACKEND=cpu")
    assert calls[0][:7] == ["run", "--plan", "my 'plan'", "--source", odd.replace("$$", "$"), "--backend", "cpu"]
    assert not (tmp_path / "pwned").exists()
    calls = make(tmp_path, "deploy", "OVERLAY=hw `x`", "MODEL_DIR=m,1", "BOARD_HOST=pynq;id")
    assert calls == [["deploy", "--host", "pynq;id", "--user", "xilinx", "--overlay", "hw `x`", "--model", "m,1"]]
    (tmp_path / "build" / "compare").mkdir(parents=True)
    calls = make(tmp_path, "compare", "BOARD=a'b", "MODEL=m.onnx")
    assert calls[0][:5] == ["dpu", "compare", "--board", "a'b", "--model"]
    assert calls[0][6:8] == ["--plot", "build/compare/a'b.png"]
    assert (tmp_path / "build" / "compare" / "a'b-sweep.json").exists()


def _make_plain(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`make -s ARGUMENTS...` in tmp_path, dpupose not recorded (the venv targets)."""
    argv = ["make", "-s", "-f", str(ROOT / "Makefile"), *arguments]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def _python_in_a_folder_with_a_blank_and_quotes(tmp_path: Path, script: str) -> Path:
    folder = tmp_path / "my \"py it's"  # one double quote: an unterminated string where "$(PY310)" is read
    folder.mkdir()
    python = folder / "python3.10"
    python.write_text(script)
    python.chmod(0o755)
    return python


def test_test_board_py_takes_a_python_path_with_blanks_and_quotes(tmp_path):
    # PY310 was read unquoted (`for p in $(PY310)`): a Python 3.10 under a folder with a blank was taken as two
    # words, and the target said PY310 "is not a Python 3.10". A stand-in 3.10 whose package index cannot be
    # reached: the target finds it and says it skipped, exit 0.
    python = _python_in_a_folder_with_a_blank_and_quotes(
        tmp_path, '#!/bin/sh\ncase "$2" in *version_info*) exit 0 ;; esac\nexit 1\n'
    )
    proc = _make_plain(tmp_path, "test-board-py", f"PY310={python}")
    assert proc.returncode == 0, proc.stderr
    assert "skipped: .venv-board needs building and the package index" in proc.stdout
    assert not (tmp_path / ".venv-board").exists()


def test_the_board_venv_is_made_by_a_python_at_a_path_with_blanks_and_quotes(tmp_path):
    # The stamp's recipe read PY310 as "$(PY310)": a quote in its path broke the shell before the venv was made.
    # A stand-in 3.10 records its arguments and makes a venv whose pip records its own.
    calls = tmp_path / "calls"
    python = _python_in_a_folder_with_a_blank_and_quotes(
        tmp_path,
        f'#!/bin/sh\necho "python $*" >> {calls}\nmkdir -p "$3/bin"\n'
        f'printf \'#!/bin/sh\\necho "pip $*" >> {calls}\\n\' > "$3/bin/pip" && chmod +x "$3/bin/pip"\n',
    )
    for name in ("pyproject.toml", "constraints-board.txt"):
        (tmp_path / name).touch()
    proc = _make_plain(tmp_path, ".venv-board/.installed", f"PY310={python}")
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "python -m venv .venv-board"
    assert [line.split()[:2] for line in lines[1:]] == [["pip", "install"]] * 2
    assert (tmp_path / ".venv-board" / ".installed").exists()


def _recording_python310(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in Python 3.10 in tmp_path whose `-m venv DIR` makes a venv with a pip and a pytest that record
    their arguments, as the venv's own line, in tmp_path/calls; with the files the board venv's stamp needs."""
    calls = tmp_path / "calls"
    python = tmp_path / "python3.10"
    tool = f'#!/bin/sh\necho "$(basename $0) $*" >> {calls}\n'
    python.write_text(
        f'#!/bin/sh\nif [ "$1" = -m ]; then echo "venv $3" >> {calls}; mkdir -p "$3/bin"\n'
        f'  for t in pip pytest; do printf \'{tool}\' > "$3/bin/$t"; chmod +x "$3/bin/$t"; done\nfi\nexit 0\n'
    )
    python.chmod(0o755)
    for name in ("pyproject.toml", "constraints-board.txt"):
        (tmp_path / name).touch()
    return python, calls


@pytest.mark.parametrize("board_venv", ["venvs/py=3.10", "b%1", "b@x+1", "/ABS/b-1.v_2"])
def test_test_board_py_builds_and_runs_in_a_board_venv_whose_path_has_an_equals_sign(tmp_path, board_venv):
    # test-board-py made the stamp by a make of its own with the stamp's path as the goal, which make reads as a
    # variable's assignment when it holds an = (BOARD_VENV=venvs/py=3.10): that make ran help, the venv was never
    # built, and the tests stopped at 'venvs/py=3.10/bin/pytest: No such file or directory'.
    board_venv = board_venv.replace("/ABS", str(tmp_path))
    python, calls = _recording_python310(tmp_path)
    proc = _make_plain(tmp_path, "test-board-py", f"PY310={python}", f"BOARD_VENV={board_venv}")
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == f"venv {board_venv}"
    assert [line.split()[:2] for line in lines[1:]] == [["pip", "install"]] * 2 + [["pytest", "-q"]]
    assert (tmp_path / board_venv / ".installed").exists()


@pytest.mark.parametrize("how", ["MAKEFILES", "-f"])
def test_test_board_py_builds_where_make_read_another_makefile_first(tmp_path, how):
    # test-board-py's own make read the first makefile make had read as this one (firstword of MAKEFILE_LIST),
    # which is another where MAKEFILES names one or -f gives two: that make had no target ('No targets. Stop.')
    # and test-board-py failed.
    python, calls = _recording_python310(tmp_path)
    extra = tmp_path / "extra.mk"
    extra.write_text("EXTRA_SETTING := 1\n")
    env = {**os.environ, "MAKEFILES": str(extra)} if how == "MAKEFILES" else dict(os.environ)
    first = [] if how == "MAKEFILES" else ["-f", str(extra)]
    argv = ["make", "-s", *first, "-f", str(ROOT / "Makefile"), "test-board-py", f"PY310={python}"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "venv .venv-board"
    assert [line.split()[:2] for line in lines[1:]] == [["pip", "install"]] * 2 + [["pytest", "-q"]]


def test_test_board_py_runs_in_a_built_board_venv_from_another_folder_without_the_index(tmp_path):
    # Its first make asks whether the venv is up to date (-q) before it probes the package index: asked without
    # this Makefile (-f), from a folder with no makefile of its own (make -f path/Makefile), that make found no
    # target and the venv, built, was taken for one that needs building: with no index, the tests were skipped.
    # A stand-in 3.10 that cannot reach the index, and a venv already built whose pytest records its arguments.
    calls = tmp_path / "calls"
    python = tmp_path / "python3.10"
    python.write_text('#!/bin/sh\ncase "$2" in *version_info*) exit 0 ;; esac\nexit 1\n')  # no index
    python.chmod(0o755)
    for name in ("pyproject.toml", "constraints-board.txt"):
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (0, 0))
    (tmp_path / ".venv-board" / "bin").mkdir(parents=True)
    pytest_tool = tmp_path / ".venv-board" / "bin" / "pytest"
    pytest_tool.write_text(f'#!/bin/sh\necho "pytest $*" >> {calls}\n')
    pytest_tool.chmod(0o755)
    (tmp_path / ".venv-board" / ".installed").touch()
    proc = _make_plain(tmp_path, "test-board-py", f"PY310={python}")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stdout and calls.read_text() == "pytest -q -m board_py\n"


def test_test_board_py_names_a_python_that_is_not_3_10_whatever_its_path_holds(tmp_path):
    python = _python_in_a_folder_with_a_blank_and_quotes(tmp_path, "#!/bin/sh\nexit 1\n")
    proc = _make_plain(tmp_path, "test-board-py", f"PY310={python}")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[0] + "\n" == (  # make adds its 'make: *** [...] Error 2'
        f"make test-board-py: PY310={python} is not a Python 3.10: give the path of one as PY310=/usr/bin/python3.10 "
        "or leave PY310 out to look for one\n"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *[("VENV", "my venv"), ("VENV", ""), ("BOARD_VENV", "board venv"), ("VENV", "it's"), ("BOARD_VENV", 'b"v')],
        *[("BOARD_VENV", "b'v"), ("VENV", 'a"b')],  # each quote in each variable
        *[("VENV", f"v{c}x") for c in ";&|()`<>\\*?[{}:#"],
        *[("VENV", "v$$(touch ran)"), ("VENV", "v;touch$${IFS}ran"), ("BOARD_VENV", "b>ran"), ("BOARD_VENV", "b&x")],
    ],
)
def test_setup_refuses_a_venv_of_a_blank_a_quote_or_nothing_before_making_one(tmp_path, variable, value):
    # `python -m venv $(VENV)` made a venv of each word (one of them in the checkout) and named the stamp after
    # the last; an empty VENV made BIN /bin; a quote stopped the recipe with bash's 'syntax error near unexpected
    # token'. A character the shell reads ran as code there (VENV='v;touch ran' ran touch, 'b>ran' made ran) or
    # stopped make (a ; in the stamp's rule: 'missing separator'). A stand-in Python records what it is asked to do.
    calls = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\necho 3.12\n')
    python.chmod(0o755)
    proc = _make_plain(tmp_path, "setup", f"{variable}={value}", f"PYTHON={python}")
    assert proc.returncode == 2
    venvs = {"VENV": ".venv", "BOARD_VENV": ".venv-board", variable: value.replace("$$", "$")}  # make reads $$
    said = (
        f"VENV={venvs['VENV']} BOARD_VENV={venvs['BOARD_VENV']}: each must name one folder, by a path without blanks, "
        "quotes or any of ; & | ( ) $ ` < > \\ * ? [ { } : # (make cannot"
    )
    assert said in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not calls.exists() or "venv" not in calls.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["python"]


@pytest.mark.parametrize(("variable", "value"), [("VENV", "~/venvs/dp"), ("BOARD_VENV", "~/b"), ("VENV", "~")])
def test_a_venv_with_a_leading_tilde_make_was_given_unexpanded_is_refused(tmp_path, variable, value):
    # make VENV='~/venvs/dp' (quoted: the shell left the ~): make takes the stamp's target as $HOME's, the
    # recipe's bare `python -m venv ~/venvs/dp` too, but its quoted check that VENV is no folder of the user's
    # looked at ./~/venvs/dp: the venv was made over $HOME/venvs/dp, files and all. Refused on one line first.
    home = tmp_path / "home"
    (home / "venvs" / "dp").mkdir(parents=True)
    (home / "venvs" / "dp" / "notes.txt").write_text("mine")
    calls = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\necho 3.12\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV", "BOARD_VENV", "MAKEFLAGS")}
    argv = ["make", "-s", "-f", str(ROOT / "Makefile"), "setup", f"{variable}={value}", f"PYTHON={python}"]
    proc = subprocess.run(
        argv, cwd=tmp_path, env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    venvs = {"VENV": ".venv", "BOARD_VENV": ".venv-board", variable: value}
    said = (
        f"VENV={venvs['VENV']} BOARD_VENV={venvs['BOARD_VENV']}: a path that starts with ~ reached make unexpanded "
        "(quoted), and make and the shell read it apart: write $HOME/... or an absolute path"
    )
    assert said in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not calls.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "python"]
    assert os.listdir(home / "venvs" / "dp") == ["notes.txt"]


@pytest.mark.parametrize("value", ["v$$(touch ran)", "v;touch$${IFS}ran", "v`touch ran`"])
def test_a_venv_that_would_run_code_is_refused_before_make_finds_its_python(tmp_path, value):
    # Without PYTHON, make asks $(VENV)/bin/python for the interpreter the venv was made with, in a $(shell)
    # read with the Makefile, before any target: VENV='v$$(touch ran)' ran touch there, on every make (help
    # too), where the check stood below it. It stands above now, so no make reads such a path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV", "BOARD_VENV", "MAKEFLAGS")}
    argv = ["make", "-s", "-f", str(ROOT / "Makefile"), "help", f"VENV={value}"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    said = f"VENV={value.replace('$$', '$')} BOARD_VENV=.venv-board: each must name one folder, by a path without"
    assert said in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert os.listdir(tmp_path) == []  # no file 'ran'


def test_compare_adds_a_dpu_given_on_the_command_line_and_not_make_hw_s_default(tmp_path):
    (tmp_path / "build" / "compare").mkdir(parents=True)
    calls = make(tmp_path, "compare", "MODEL=m.onnx", "DPU=my configs/b1152.toml")
    assert [c[6:8] for c in calls] == [["--config", "my configs/b1152.toml"]] * 2  # the table and plot; the sweep
    for assignments in ((), ("DPU=",)):  # DPU's default (make hw's configuration), or an empty DPU: nothing added
        calls = make(tmp_path, "compare", "MODEL=m.onnx", *assignments)
        assert len(calls) == 2 and not any("--config" in c for c in calls)
    # a DPU in the environment (exported for make hw) is not one given to compare on its command line
    calls = make(tmp_path, "compare", "MODEL=m.onnx", env={"DPU": "mine.toml"})
    assert len(calls) == 2 and not any("--config" in c for c in calls)
