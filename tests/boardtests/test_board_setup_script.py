"""scripts/board_setup.sh against stand-ins for pip3 and python3: it installs once, then does nothing."""

import os
import resource
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "board_setup.sh"

FAKE_PIP = """#!/bin/bash
# Records its arguments; "installed" state lives in marker files.
echo "$*" >> "$STATE/pip.log"
case "$1" in
  show)
    [ -f "$STATE/installed-$2" ] || exit 1
    [ "$2" = pynq-dpu ] && echo "Version: $(cat "$STATE/installed-$2")"
    exit 0 ;;
  install)
    case " $* " in *" --no-cache-dir "*) cache=no ;; *) cache=yes ;; esac
    case " $* " in *" --force-reinstall "*) force=yes ;; *) force=no ;; esac
    for a in "$@"; do
      case "$a" in
        pynq-dpu==*)
          # pynq-dpu 2.5.1 is an sdist whose build installs VART (downloaded from xilinx.com, apt-get) and ignores
          # that step's failure ($STATE/vart-fails); pip keeps the built wheel and reuses it (no build) unless
          # --no-cache-dir; an installed package is left alone unless --force-reinstall.
          [ -f "$STATE/installed-pynq-dpu" ] && [ "$force" = no ] && continue
          if [ "$cache" = no ] || [ ! -f "$STATE/pip-cache-pynq-dpu" ]; then
            [ -f "$STATE/vart-fails" ] || touch "$STATE/vart-installed"
            [ "$cache" = no ] || touch "$STATE/pip-cache-pynq-dpu"
          fi
          echo "${a#pynq-dpu==}" > "$STATE/installed-pynq-dpu" ;;
        *.whl*) echo 1 > "$STATE/installed-dpupose" ;;
      esac
    done ;;
esac
"""

FAKE_PYNQ = """#!/bin/bash
# PYNQ's `pynq get-notebooks NAME -p DIR -f`: copies the package's notebooks into DIR/NAME and notes the
# module in DIR/.pynq-notebooks, its list of delivered notebooks (fails once $STATE/pynq-fails exists).
echo "$(pwd): $*" >> "$STATE/pynq.log"
[ -f "$STATE/pynq-fails" ] && { echo "pynq: no device" >&2; exit 1; }
[ "$1 $2 $3 $4" = "get-notebooks dpupose -p ." ] || exit 2
mkdir -p dpupose && echo '{"cells": []}' > dpupose/pose_camera.ipynb
echo '["dpupose.notebooks"]' > .pynq-notebooks
"""

FAKE_PYTHON = """#!/bin/bash
# Succeeds, except `import onnxruntime` once $STATE/sigill exists: killed by SIGILL, as on a core too old; and
# code importing vart or pynq_dpu (which imports vart) while VART is not installed.
cat >/dev/null 2>&1 || true
if [ "$1" = -c ] && [ ! -f "$STATE/vart-installed" ]; then
  case "$2" in *vart*|*pynq_dpu*) echo "ModuleNotFoundError: No module named 'vart'" >&2; exit 1 ;; esac
fi
if [ "$1" = -c ] && [ "$2" = "import onnxruntime" ] && [ -f "$STATE/sigill" ]; then
  ulimit -c 0  # SIGILL dumps core: no core file left where the tests run
  kill -ILL $$
fi
exit 0
"""


# board_setup.sh refuses to run unless `id -u` says 0 (on the board it runs as root). What it does as root,
# with every location it writes under the test's folder, is checked by any user: `id -u` says 0 here.
FAKE_ID = """#!/bin/bash
[ "$1" = -u ] && { echo "${FAKE_UID:-0}"; exit 0; }
PATH=/usr/bin:/bin exec id "$@"
"""


def _core_dumps_on() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


@pytest.fixture
def board(tmp_path):
    if shutil.which("sha256sum") is None:
        pytest.skip("needs sha256sum")
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, text in {"pip3": FAKE_PIP, "python3": FAKE_PYTHON, "pynq": FAKE_PYNQ, "id": FAKE_ID}.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(stat.S_IRWXU)
    profile = tmp_path / "pynq_venv.sh"
    profile.write_text("PYNQ_VENV_SOURCED=1\n")
    (tmp_path / "jupyter_notebooks").mkdir()
    # As PYNQ's image sets it, and a systemd unit (the first boot) does not read it.
    (tmp_path / "environment").write_text(
        f'PATH="/usr/bin"\nPYNQ_JUPYTER_NOTEBOOKS="{tmp_path / "jupyter_notebooks"}"\n'
    )
    home = tmp_path / "dpupose"
    (home / "wheels").mkdir(parents=True)
    shutil.copy(SCRIPT, home / "board_setup.sh")
    wheel = home / "wheels" / "dpupose-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"first build")
    (tmp_path / "cwd").mkdir()
    env = {
        **os.environ,
        "PATH": f"{fakes}:{os.environ['PATH']}",
        "STATE": str(tmp_path),
        "PYNQ_VENV_PROFILE": str(profile),
        "XRT_PROFILE": str(tmp_path / "absent"),
        "DPUPOSE_STAMP_DIR": str(tmp_path / "stamp"),
        "DPUPOSE_ENVIRONMENT_FILE": str(tmp_path / "environment"),
    }
    env.pop("PYNQ_JUPYTER_NOTEBOOKS", None)

    def run_setup(check: bool = True) -> list[str]:
        log = tmp_path / "pip.log"
        log.unlink(missing_ok=True)
        proc = subprocess.run(
            ["bash", str(home / "board_setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path / "cwd",
            preexec_fn=_core_dumps_on,  # as on a machine with `ulimit -c unlimited`
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"board_setup.sh failed ({proc.returncode}): {proc.stderr}")
        return proc if not check else log.read_text().splitlines()

    return run_setup, wheel


def test_installs_once_then_only_checks(board):
    run_setup, wheel = board
    first = run_setup()
    assert "install --no-build-isolation --no-cache-dir pynq-dpu==2.5.1" in first
    assert f"install {wheel}[board]" in first
    assert f"install --no-deps --force-reinstall {wheel}" in first
    second = run_setup()
    assert [line for line in second if line.startswith("install")] == []
    wheel.write_bytes(b"second build, same version")
    third = run_setup()
    assert [line for line in third if line.startswith("install")] == [
        f"install {wheel}[board]",
        f"install --no-deps --force-reinstall {wheel}",
    ]


def test_refuses_without_a_pynq_environment(board, tmp_path):
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "PYNQ_VENV_PROFILE": str(tmp_path / "none"),
    }
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not a PYNQ 3.x image" in proc.stderr


def test_refuses_to_run_as_another_user_than_root(board, tmp_path):
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_UID": "1000"}
    proc = subprocess.run(["bash", str(SCRIPT), "x.whl"], env=env, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"board_setup.sh: run as root: sudo bash {SCRIPT} x.whl\n"
    assert not (tmp_path / "pip.log").exists()


def test_an_onnxruntime_that_does_not_load_is_named(board, tmp_path):
    run_setup, _ = board
    (tmp_path / "sigill").touch()
    proc = run_setup(check=False)
    assert proc.returncode == 2
    assert "onnxruntime (not installed) does not load on this board" in proc.stderr
    assert "Illegal instruction" in proc.stderr and "pip3 install onnxruntime==1.20.1" in proc.stderr
    assert "are importable" not in proc.stdout
    assert os.listdir(tmp_path / "cwd") == []  # the stand-in's SIGILL left no core file


def test_the_notebook_goes_into_jupyters_folder_once(board, tmp_path):
    """The first setup (first boot, or `dpupose deploy`) delivers the notebook the PYNQ way into
    $PYNQ_JUPYTER_NOTEBOOKS/dpupose (read from /etc/environment when unset, as in the first-boot unit); later
    setups keep that copy (it may hold the user's edits)."""
    run_setup, wheel = board
    notebooks = tmp_path / "jupyter_notebooks"
    run_setup()
    assert (tmp_path / "pynq.log").read_text().splitlines() == [f"{notebooks}: get-notebooks dpupose -p . -f"]
    delivered = notebooks / "dpupose" / "pose_camera.ipynb"
    assert delivered.is_file()
    delivered.write_text("edited")
    wheel.write_bytes(b"second build")
    proc = run_setup(check=False)
    assert proc.returncode == 0 and f"notebook {delivered} kept" in proc.stdout
    assert delivered.read_text() == "edited" and len((tmp_path / "pynq.log").read_text().splitlines()) == 1
    delivered.unlink()
    (tmp_path / "pynq-fails").touch()  # e.g. no device found: the rest of the setup stands
    proc = run_setup(check=False)
    assert proc.returncode == 0
    assert "warning: the notebook could not be delivered; dpupose itself is installed" in proc.stderr
    (tmp_path / "pynq-fails").unlink()
    proc = run_setup(check=False)
    assert proc.returncode == 0 and f"notebook delivered: {delivered}" in proc.stdout and delivered.is_file()


def test_the_notebook_is_owned_as_jupyters_folder_is(board, tmp_path):
    """Owned as that folder is (xilinx's on the image), and so is PYNQ's list of what it delivered there:
    root's, a later `pynq get-notebooks` as xilinx could not write it (PermissionError, after copying its
    notebooks)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can give the notebooks folder to another user, as the image does")
    run_setup, _ = board
    notebooks = tmp_path / "jupyter_notebooks"
    os.chown(notebooks, 1234, 1235)
    run_setup()
    delivered = notebooks / "dpupose" / "pose_camera.ipynb"
    for path in (delivered, delivered.parent, notebooks / ".pynq-notebooks"):
        assert (path.stat().st_uid, path.stat().st_gid) == (1234, 1235), path


def test_without_a_notebooks_folder_the_setup_goes_on(board, tmp_path):
    run_setup, _ = board
    (tmp_path / "environment").write_text('PATH="/usr/bin"\n')
    proc = run_setup(check=False)
    assert proc.returncode == 0 and "the notebook is not delivered" in proc.stdout
    assert not (tmp_path / "pynq.log").exists()


def test_a_pynq_dpu_whose_vart_did_not_install_is_named_then_installed_again(board, tmp_path):
    """pynq-dpu 2.5.1's build installs VART from xilinx.com with apt-get and goes on when that fails, and pip
    says it installed pynq-dpu: the setup names what is missing and what to check, and its next run builds
    pynq-dpu again, past pip's cache of the wheel it built (which would not install VART)."""
    run_setup, _ = board
    (tmp_path / "vart-fails").touch()
    proc = run_setup(check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        "board_setup.sh: pynq-dpu 2.5.1 is installed but VART (import vart, xir) is not: building pynq-dpu "
        "downloads the Vitis AI runtime from www.xilinx.com and installs it with apt-get, and goes on when that "
        "fails; check that www.xilinx.com can be reached and that no other apt-get is running, then run this "
        "script again\n"
    )
    (tmp_path / "vart-fails").unlink()  # the network is back
    log = run_setup()
    assert "install --no-build-isolation --no-cache-dir --force-reinstall --no-deps pynq-dpu==2.5.1" in log
    assert (tmp_path / "vart-installed").is_file()
    assert [line for line in run_setup() if line.startswith("install")] == []  # whole now: left alone
