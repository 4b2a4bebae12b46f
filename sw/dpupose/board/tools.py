"""Running the external tools the board code needs (lsblk, mtools, debugfs, bmaptool, ssh, rsync, pip).

Every tool call goes through `run_tool`: it finds the tool with `shutil.which` on PATH, then in the
system folders SYSTEM_DIRS (a missing tool raises ToolNotFoundError naming the Debian package to install),
logs the command line, and turns a failure into a DpuposeError that carries the tool's own message. Command
lines are built by pure functions elsewhere, so tests can assert on them.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

from dpupose.errors import ToolFailed, ToolNotFoundError

log = logging.getLogger(__name__)

# Tool -> Debian/Ubuntu package that provides it (for the "install it" hint).
TOOL_PACKAGES: dict[str, str] = {
    "lsblk": "util-linux",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "mtype": "mtools",
    "debugfs": "e2fsprogs",
    "bmaptool": "bmap-tools",
    "ssh": "openssh-client",
    "scp": "openssh-client",
    "rsync": "rsync",
}


# Debian puts debugfs (e2fsprogs) in /usr/sbin, which only root's PATH holds by default: an ordinary user,
# who may stage an image file, was told to install a tool that is installed. Looked up after PATH.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_tool(name: str) -> str | None:
    """The absolute path of `name`: on PATH, else in SYSTEM_DIRS; None where it is in neither."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS))


def require_tool(name: str) -> str:
    """The absolute path of `name` (find_tool), or ToolNotFoundError saying how to install it."""
    path = find_tool(name)
    if path is None:
        package = TOOL_PACKAGES.get(name)
        hint = f" (Debian/Ubuntu: sudo apt-get install {package})" if package else ""
        raise ToolNotFoundError(f"'{name}' is not installed or not on PATH: install it{hint} and try again")
    return path


def have_tool(name: str) -> bool:
    return find_tool(name) is not None


def sudo_command() -> str | None:
    """This command line as root: `sudo` and dpupose's full path, since sudo's secure_path replaces PATH and
    `sudo dpupose ...` finds no dpupose in a virtual environment. None where this process is not the dpupose
    command (a notebook, a test)."""
    return root_command(sys.argv[1:])


def root_command(args: Sequence[str]) -> str | None:
    """The dpupose command line with `args` as root (sudo_command), or None where this process is not the
    dpupose command."""
    argv = list(sys.argv)
    if argv and os.path.basename(argv[0]) == "dpupose" and os.path.isfile(argv[0]):
        command = [os.path.abspath(argv[0]), *args]
    elif argv and argv[0].endswith(os.path.join("dpupose", "__main__.py")):  # python -m dpupose
        command = [sys.executable, "-m", "dpupose", *args]
    else:
        return None
    return f"sudo {shlex.join(command)}"


def run_tool(
    argv: Sequence[str],
    *,
    capture: bool = True,
    check: bool = True,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """Run argv[0] (looked up on PATH, then in SYSTEM_DIRS) with the rest as arguments.

    capture: collect stdout/stderr (otherwise they go to the terminal, for interactive tools).
    check: raise ToolFailed on a non-zero exit.
    """
    if not argv:
        raise ValueError("empty command line")
    exe = require_tool(argv[0])
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    log.debug("run: %s", shlex.join(argv))
    proc = subprocess.run(
        [exe, *argv[1:]],
        input=input_bytes.decode() if text and input_bytes is not None else input_bytes,
        capture_output=capture,
        text=text,
        env=full_env,
        check=False,
    )
    if check and proc.returncode != 0:
        stderr = proc.stderr if capture else ""
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        if not capture:  # its messages went to the terminal, just above
            stderr = f"{argv[0]}'s own messages are above"
        raise ToolFailed(argv, proc.returncode, stderr or "")
    return proc


class CommandRunner:
    """Runs command lines; deploy takes one so tests can pass a recording fake."""

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        return run_tool(argv, capture=capture, check=check)
