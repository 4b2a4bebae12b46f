"""The one way the hardware build runs an external tool.

`run_tool` checks the tool is on PATH, removes stale copies of the files it is expected to write, runs
it with ``check=True`` and its output going to a log file, and then verifies that every expected file
exists and is not empty. `query_tool` runs short informational commands (``vivado -version``).

API:
    run_tool(argv, cwd=..., log=..., expect=[...], env=None)
    query_tool(argv, timeout=300) -> str
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from dpupose.errors import ArtifactError, ToolNotFoundError
from dpupose.fsio import open_new

log = logging.getLogger(__name__)
TAIL_LINES = 15  # log lines quoted in an error message


class ToolFailed(ArtifactError):
    """An external tool exited with a non-zero status."""


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolNotFoundError(f"{tool} is not on PATH; `dpupose hw check` says what to install or source")
    return path


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    """'the end of LOG:' and the last `lines` of the log `path`, for an error message; where the log is no
    regular file (a link to /dev/stdout or a FIFO, to watch the tool), where the output went: read back, a pipe
    waits for every writer to close it, run_tool's own among them."""
    if not path.is_file():
        return f"its output went to {path}"
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        text = []
    return f"the end of {path}:\n" + "\n".join(text[-lines:])


def query_tool(argv: Sequence[str], timeout: float = 300) -> str:
    """stdout and stderr of a short command (ToolNotFoundError / ToolFailed if it cannot run)."""
    _which(argv[0])
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.CalledProcessError as exc:
        raise ToolFailed(f"`{shlex.join(argv)}` exited with status {exc.returncode}: {exc.stderr.strip()}") from None
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"`{shlex.join(argv)}` did not answer within {timeout:g} s") from None
    return proc.stdout + proc.stderr


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_file: Path,
    expect: Sequence[Path],
    env: Mapping[str, str] | None = None,
) -> None:
    """Run `argv` in `cwd`, output to `log_file`; then every path in `expect` must be a non-empty file."""
    _which(argv[0])
    for path in expect:
        path.unlink(missing_ok=True)  # a stale copy must not pass for this run's output
    cwd.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(argv)
    log.info("running %s (log: %s)", command, log_file)
    # A new file (open_new): an earlier log emptied in place was emptied under its other names too (a hard link).
    with open_new(log_file, buffered=True) as out:
        out.write(f"# {command}\n# in {cwd}\n".encode())
        out.flush()
        try:
            subprocess.run(list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=True)
        except subprocess.CalledProcessError as exc:
            for path in expect:
                path.unlink(missing_ok=True)  # a half-written output must not look finished
            raise ToolFailed(f"{argv[0]} failed with exit status {exc.returncode}; {_tail(log_file)}") from None
    missing = [str(p) for p in expect if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise ArtifactError(f"{argv[0]} finished but did not write {', '.join(missing)}; {_tail(log_file)}")
