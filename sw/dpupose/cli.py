"""The `dpupose` command: one subcommand per use of the project.

Subcommands live in `dpupose.commands.<name>`; each module defines `register(subparsers)` and keeps
heavy imports (torch, onnx, matplotlib) inside the functions it runs, so that `dpupose run` on the
board never imports torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from dpupose import __version__
from dpupose.errors import DpuposeError, Terminated
from dpupose.fsio import free_space

# Order is the order shown by `dpupose --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "data",
    "train",
    "eval",
    "export",
    "quantize",
    "deploy_check",
    "dpu",
    "zoo",
    "split",
    "run",
    "bench",
    "sdcard",
    "deploy",
    "hw",
)


# What a base install (`pip install dpupose`: the board's packages) lacks, by module: the host extra's
# packages, and OpenCV, which the board has from its image. A command that imports one says what to install.
HOST_MODULES = {"torch": "PyTorch", "onnx": "onnx", "scipy": "SciPy", "matplotlib": "Matplotlib", "cv2": "OpenCV"}


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (what is wrong, and where the usage is) instead of the usage
    text followed by the error; subcommand parsers are of this class too."""

    # The parser that read the command line last: a subcommand's reads the rest of the line after its parent's.
    _innermost: Parser | None = None

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._given = list(sys.argv[1:] if args is None else args)
        Parser._innermost = self
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # type: ignore[override]
        # The top parser reports the words no parser took, after the subcommand's has read the rest: the options
        # to look up are the subcommand's (`dpupose sdcard stage --help`), not the list of commands.
        inner = Parser._innermost
        if message.startswith("unrecognized arguments: ") and inner is not None and inner is not self:
            inner.error(message)
        hint = self._dash_hint(message) or self._pattern_hint(message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see `{self.prog} --help`)\n")

    def _pattern_hint(self, message: str) -> str:
        """What to give `run --source` for the files a pattern named (`--source images/*.jpg`, which the shell
        expands into a word per file: the first taken as the source, the rest unrecognized)."""
        prefix = "unrecognized arguments: "
        given = getattr(self, "_given", [])
        if not message.startswith(prefix) or "--source" not in self._option_string_actions or "--source" not in given:
            return ""
        at = given.index("--source") + 1
        files = given[at : at + 1] + message[len(prefix) :].split(" ")
        if len(files) < 2 or not all(os.path.isfile(w) for w in files):
            return ""
        folders = sorted({os.path.dirname(w) or "." for w in files})
        fix = f"pass their folder, --source {folders[0]}"
        if len(folders) > 1:
            named = ", ".join(folders[:4]) + " ..." * (len(folders) > 4)
            fix = f"pass each of their folders in a run of its own ({named})"
        return (
            f"; --source takes one image folder, image, video or camera:N, not {len(files)} files (a pattern such "
            f"as *.jpg, which the shell expands into a word per file): {fix}"
        )

    def _dash_hint(self, message: str) -> str:
        """How to give a value that starts with '-' (a path such as -x.onnx), which argparse reads as an
        option: after an option missing its value, or when a positional is missing and a word of the command
        line starting with '-' is no option of this command."""
        match = re.fullmatch(r"argument (-[^/:]+)(?:/\S+)?: expected one argument", message)
        if match:
            return f"; a value starting with '-' is written {match.group(1)}=VALUE (or ./VALUE for a path)"
        prefix = "the following arguments are required: "
        missing = message[len(prefix) :].split(", ") if message.startswith(prefix) else []
        known = self._option_string_actions
        odd = [w for w in getattr(self, "_given", []) if w[:1] == "-" and w[1:2] not in ("-", "") and w not in known]
        if odd and any(not name.startswith("-") for name in missing):
            return f"; if {odd[0]} is one, write it after -- (or as ./{odd[0]} for a path)"
        return ""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dpupose",
        description="MobileNetV2 pose estimation split between the Xilinx DPU and the Cortex-A53 CPU.",
    )
    parser.add_argument("--version", action="version", version=f"dpupose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"dpupose.commands.{name}")
        module.register(sub)
    _describe_subcommands(parser)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give each subcommand without a description its one-line help (as listed by its group's --help) as one:
    `dpupose hw status --help` would otherwise leave out what the command does and what its exit statuses
    mean, which only `dpupose hw --help` showed."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                line = helps.get(name)
                if sub.description is None and line:
                    sub.description = line[0].upper() + line[1:] + "."
                _describe_subcommands(sub)


def one_line(message: str) -> str:
    """The user's message without the worker traceback torch's DataLoader wraps around errors it re-raises."""
    if "Original Traceback" in message:
        lines = [line for line in message.strip().splitlines() if line.strip()]
        last = lines[-1]
        # The last line is "module.ErrorType: message" as the worker printed it.
        return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last
    return message


def main(argv: Sequence[str] | None = None) -> int:
    return run_stoppable(lambda: _main(argv))


def run_stoppable(call: Callable[[], int]) -> int:
    """Run a whole command (its parsing too) and return its exit status, a Ctrl-C or SIGTERM said on its one
    line (stopped), also where one came while an extension module initialised (stop_behind); what is left in
    stdout's buffer is flushed, or dropped where that fails. `dpupose` and the demo (python -m dpupose.demo)
    both run through it. SIGTERM unwinds from the start: building the parser imports every command's module (a
    few hundred ms), and Ctrl-C or `kill` then is as likely as later; either ends on its one line, not a
    traceback."""
    previous = None
    try:
        previous = _raise_on_sigterm()
        return call()
    except KeyboardInterrupt as exc:
        return stopped(exc)
    except ImportError as exc:
        stop = stop_behind(exc)
        if stop is None:
            raise
        return stopped(stop)
    finally:
        if previous is not None:
            restore_signals(previous)
        if sys.stdout is not None:  # the command's output, its --help's, a group's help
            _flush_or_drop(sys.stdout)


def stopped(exc: KeyboardInterrupt) -> int:
    """Say how a command was stopped, on its one line, and return its exit status: 143 for SIGTERM
    (Terminated), 130 for Ctrl-C."""
    terminated = isinstance(exc, Terminated)
    print(f"dpupose: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


def stop_behind(exc: ImportError) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that an extension module's import turned into `exc`: a signal while its init runs
    (numpy's, onnxruntime's: a `dpupose run` stopped in its first second) is an ImportError ('initialization
    failed'; numpy's 'Importing the numpy C-extensions failed', which tells of a bad install). Found in its
    chain, or, where the extension let it go (numpy's), by the handler that raised it (_on_sigterm,
    _on_sigint). None: an ImportError of its own."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return _STOPPED_BY() if _STOPPED_BY is not None else None


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries(args.verbose)
    func = getattr(args, "func", None)
    if func is None:
        # A group without its subcommand (e.g. `dpupose dpu`) prints that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    _lenient_stdout()
    stdout = sys.stdout
    if stdout is not None:  # None: stdout closed (`>&-`), where print() writes nothing, as it did
        sys.stdout = NamedStdout(stdout)
    try:
        # Named as typed, its subcommand too (`dpupose dpu estimate`, not `dpupose dpu`): the parser that read it last.
        inner = Parser._innermost
        command = inner.prog if inner is not None and inner.prog.startswith("dpupose ") else args.command
        return run_reported(lambda: func(args), command, args.verbose)
    finally:
        sys.stdout = stdout


def run_reported(call: Callable[[], Any], command: str, verbose: bool) -> int:
    """Run a command's work and return its exit status, its errors said on one line as dpupose's
    (`dpupose: error: ...`): dpupose's own, a host package missing (`command` needs it: a subcommand's name, or a
    phrase such as 'the demo'), a file system refusal, a symbolic link loop, a lost torchrun peer; stdout closed
    by its reader is 141. `verbose` keeps the traceback of what is not dpupose's own."""
    try:
        code = int(call() or 0)
        if sys.stdout is not None:
            sys.stdout.flush()  # what is still buffered fails here, named, not at exit as an 'Exception ignored'
        return code
    except DpuposeError as exc:
        print(f"dpupose: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 141
    except ModuleNotFoundError as exc:
        if exc.name not in HOST_MODULES or verbose:
            raise
        print(f"dpupose: error: {missing_module_line(command, exc.name)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        loop = _symlink_loop(exc)
        if loop is not None and not verbose:
            print(f"dpupose: error: {os_error_line(loop)}", file=sys.stderr)
            return 2
        # Under torchrun, a process whose peer stopped (rank 0 refusing a locked --out, say, while this one
        # waits at a barrier) gets the collective's lost connection; the peer has said why on its own line.
        if verbose or not _peer_lost(exc):
            raise
        rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
        print(
            f"dpupose: error: process {rank} of {world} lost its connection to another process of this run, "
            "which stopped (its message is above); this one stops too",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        # A file system refusal (permission, disk full, read-only, a missing parent) that no check foresaw:
        # one line naming the path, as for any other bad input; --verbose keeps the traceback.
        if verbose:
            raise
        print(f"dpupose: error: {os_error_line(exc)}", file=sys.stderr)
        return 2


def _flush_or_drop(stream: Any) -> None:
    """Flush what the command left in stdout's buffer (on an error, its output until then), and where that
    fails (a full disk, a closed pipe: the command has said so, or has its own error to tell) point stdout's
    descriptor at /dev/null: what is still buffered was kept, and Python's own flush at exit failed on it again,
    'Exception ignored in: <_io.TextIOWrapper name='<stdout>'...>' after the command's line, and exit status
    120 in place of its own."""
    try:
        stream.flush()
        return
    except OSError:
        pass
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no descriptor (a stream in memory): nothing at exit to fail
        return
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class NamedStdout:
    """sys.stdout for a command's run, whose write errors name where stdout goes: a `--json > FILE` (or a table)
    on a full disk was 'No space left on device: free some space, or write elsewhere', naming nothing (a
    write's error names no file). The file's path, where /proc tells it. Everything else is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is not None or exc.errno in (None, errno.EPIPE):  # a closed pipe: exit status 141
            return exc
        try:
            path = os.readlink(f"/proc/self/fd/{self._stream.fileno()}")
        except (OSError, ValueError, AttributeError):  # no /proc (macOS), a stream without a descriptor
            return exc
        return type(exc)(exc.errno, exc.strerror, path) if os.path.isabs(path) else exc  # not 'pipe:[123]'


def quiet_libraries(verbose: bool = False) -> None:
    """Keep the libraries' own progress notes ('generated new fontManager', Matplotlib's first run) out of a
    command's output, which the root logger at INFO would show among the command's own; --verbose shows them.
    torch sets its loggers to WARNING itself once imported (TORCH_LOGS changes that), but a Ctrl-C or SIGTERM
    while it is being imported left them at INFO, and its exit hook then printed its 'FakeTensor cache stats'
    in three lines after `dpupose: interrupted`; WARNING from the start is what torch sets anyway."""
    if not verbose:
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
        logging.getLogger("torch").setLevel(logging.WARNING)


def _symlink_loop(exc: RuntimeError) -> OSError | None:
    """The OSError (ELOOP, naming the link) behind pathlib's RuntimeError 'Symlink loop from PATH', which
    Path.resolve() raises before Python 3.13 for a link that leads back to itself, where every other path the
    file system refuses is an OSError; None for any other RuntimeError."""
    context = exc.__context__
    if str(exc).startswith("Symlink loop from ") and isinstance(context, OSError) and context.errno == errno.ELOOP:
        return context
    return None


def _peer_lost(exc: RuntimeError) -> bool:
    """Whether `exc` is torch.distributed's report of a process group peer gone away (gloo's closed or reset
    connection, any backend's DistNetworkError), in a process started by torchrun with a process group up."""
    dist = sys.modules.get("torch.distributed")  # never imported here: only a command that trained has it
    if dist is None or int(os.environ.get("WORLD_SIZE", "1") or 1) < 2:
        return False
    network_error = getattr(dist, "DistNetworkError", ())
    if network_error and isinstance(exc, network_error):
        return True
    text = str(exc)
    return any(s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe"))


def _lenient_stdout() -> None:
    """Write what stdout's encoding cannot hold as backslash escapes, as Python does on stderr, instead of
    stopping the command with a UnicodeEncodeError: an ASCII or Latin-1 stdout (PYTHONIOENCODING, a legacy
    locale) and a table's ellipsis or a non-ASCII file name; a file name that is not UTF-8 on any stdout. JSON
    output is ASCII and is written as it is."""
    stdout = sys.stdout
    if getattr(stdout, "errors", None) == "strict" and hasattr(stdout, "reconfigure"):
        stdout.reconfigure(errors="backslashreplace")


_MAIN_PID: int | None = None
# What the last of _on_sigterm and _on_sigint raised in this command's run (see stop_behind): None if neither.
_STOPPED_BY: type[KeyboardInterrupt] | None = None


def _on_sigterm(signum: int, frame: object) -> None:
    global _STOPPED_BY
    if os.getpid() != _MAIN_PID:  # a forked worker (data, DataLoader, pool) inherited the handler: die as usual
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _STOPPED_BY = Terminated
    raise Terminated()


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C handler (KeyboardInterrupt), which also records that it raised it."""
    global _STOPPED_BY
    _STOPPED_BY = KeyboardInterrupt
    signal.default_int_handler(signum, frame)


def _raise_on_sigterm():
    """Turn SIGTERM into Terminated (a KeyboardInterrupt) for the command's run, so that it unwinds as
    for Ctrl-C (temporary files removed, `run`'s outputs finished) instead of dying mid-write; returns the
    handler to restore (None where no handler can be set: not the main thread)."""
    global _MAIN_PID, _STOPPED_BY
    if threading.current_thread() is not threading.main_thread():
        return None
    _MAIN_PID, _STOPPED_BY = os.getpid(), None
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C raises as before, recorded
        signal.signal(signal.SIGINT, _on_sigint)
    return signal.signal(signal.SIGTERM, _on_sigterm)


def restore_signals(previous: Any) -> None:
    """Put back the handlers _raise_on_sigterm replaced: SIGTERM's `previous` (what it returned), and Python's
    own for Ctrl-C."""
    signal.signal(signal.SIGTERM, previous)
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def missing_module_line(command: str, module: str) -> str:
    """'dpupose train needs PyTorch (module torch), which is not installed: ...' with what to install
    (`command` is what needs it: a subcommand's name, or a whole phrase such as 'the demo')."""
    fix = "install dpupose with its host extra: pip install 'dpupose[host]'"
    if module == "cv2":  # the board has it from its image: `dpupose run` and `data` run there
        fix = f"pip install opencv-python-headless, or {fix}"
    elif command in ("deploy-check", "dpupose deploy-check"):  # against dumped tensors it needs neither
        fix = (
            "against torch or ort it runs on a PC, not on the board (on the board, give --against a folder of "
            f"dumped tensors, which needs neither); on a PC, {fix}"
        )
    else:  # a command for the PC: pip would not make the board (a PYNQ image, 2 GB) a place to run it
        fix = f"it runs on a PC, not on the board; on a PC, {fix}"
    who = command if " " in command else f"dpupose {command}"
    return f"{who} needs {HOST_MODULES[module]} (module {module}), which is not installed: {fix}"


def os_error_line(exc: OSError) -> str:
    """'cannot use PATH: Permission denied' (both paths for a rename or copy); a full disk or quota and a
    read-only file system say so with what to do (for a copy, the target is the last path)."""
    what = exc.strerror or str(exc)
    paths = [os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in (exc.filename, exc.filename2) if p is not None]
    temporary = own_temporary(paths[-1]) if paths and exc.errno in (errno.ENOSPC, errno.EDQUOT) else None
    if temporary is not None:  # not a path the user chose, and gone by now: the folder and how to choose another
        room = "your quota there is used up" if exc.errno == errno.EDQUOT else f"{free_space(temporary)} free there"
        return (
            f"{what} in the temporary folder {temporary} ({room}), where this command makes its working copies: "
            "free some space there, or set TMPDIR to a folder on a disk with room"
        )
    if exc.errno == errno.EDQUOT:  # the user's quota: the file system's free space says nothing about it
        where = f" for {paths[-1]}" if paths else ""
        return (
            f"{what}{where}: your quota on that file system is used up; remove some of your files there, or "
            "write elsewhere"
        )
    if exc.errno == errno.ENOSPC:
        if not paths:
            return f"{what}: free some space, or write elsewhere"
        special = os.path.exists(paths[-1]) and not os.path.isfile(paths[-1]) and not os.path.isdir(paths[-1])
        free = "" if special else f" ({free_space(paths[-1])} free there)"  # /dev/full's is another disk's
        return f"{what} for {paths[-1]}{free}: free some space on that file system, or write elsewhere"
    if exc.errno == errno.ELOOP and paths:
        return (
            f"{paths[-1]}: too many levels of symbolic links (a link on that path leads back to itself): fix "
            "or remove that link"
        )
    if exc.errno == errno.EROFS and paths:
        return f"{paths[-1]} is on a read-only file system: write elsewhere, or remount it read-write"
    if not paths:
        return what
    return f"cannot use {' -> '.join(paths)}: {what} (check the path, its permissions and the free space)"


# The name tempfile gives what dpupose makes in the temporary folder: its prefix, dpupose-KIND- with KIND one of
# these, then 8 random characters (and debugfs's command file's suffix). A user's output there (/tmp/dpupose-run,
# /tmp/dpupose-bench.json, /tmp/dpupose-run-20261201: a date is 8 characters too) is no such name, and is named
# as any other output.
TEMPORARY_KINDS = (
    *("bench", "calib", "debugfs", "deploy", "fat", "flash", "hwcheck"),
    *("ls", "ort-int8", "stage", "standin", "status", "valid", "wheel"),
)
_TEMPORARY_NAME = re.compile(rf"dpupose-(?:{'|'.join(TEMPORARY_KINDS)})-[a-z0-9_]{{8}}(\.cmd)?")


def own_temporary(path: str) -> str | None:
    """The temporary folder (TMPDIR, tempfile.gettempdir()) when `path` lies in one of the temporary folders
    dpupose makes there (dpupose-*: stage's and deploy's layouts, bench's scratch copies), else None."""
    import tempfile

    temp = tempfile.gettempdir()
    try:
        first = os.path.relpath(os.path.abspath(path), temp).split(os.sep, 1)[0]
    except ValueError:  # another drive (Windows)
        return None
    return temp if _TEMPORARY_NAME.fullmatch(first) else None


if __name__ == "__main__":
    sys.exit(main())
