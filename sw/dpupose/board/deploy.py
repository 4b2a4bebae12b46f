"""Deploy the overlay, the compiled model and this package to a running board over ssh.

Steps (each command line comes from a pure function below, run through one CommandRunner):
1. check the overlay and model folders and compare their fingerprints (locally);
2. build the wheel and lay out the board folder (layout.BOARD_ROOT) in a temporary directory;
3. `ssh mkdir -p`, then rsync (scp when rsync is not installed) of overlay/, model/, wheels/,
   board_setup.sh, manifest.json and SHA256SUMS into INCOMING beside them, never over them: a copy cut
   short (a dropped connection) leaves the deployed folders as they were, not a mix of old and new files
   that `dpupose run` would load; rsync --delete prunes stale files inside those folders;
4. `sha256sum -c SHA256SUMS` in INCOMING, then INCOMING's folders and files moved into place;
5. `ssh -t ... sudo bash board_setup.sh WHEEL`: pynq-dpu==2.5.1 and the wheel with its board extra
   (-t so sudo can ask for the password); then the fingerprint of the deployed arch.json read back
   and compared with the model's split plan;
6. print the command that runs the model.
All ssh calls share one connection (ControlMaster), so a password is asked once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import pwd
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dpupose.board import artifacts, layout
from dpupose.board.manifest import build_manifest
from dpupose.board.tools import CommandRunner, have_tool, require_tool
from dpupose.board.wheel import build_wheel, check_wheel, setup_script, wheel_file, wheel_name
from dpupose.errors import ArtifactError, DeviceError, FingerprintMismatch, ToolFailed, UsageError
from dpupose.fsio import loads_json

log = logging.getLogger(__name__)

TOP_LEVEL = ("overlay", "model", "wheels", "board_setup.sh", "manifest.json", "SHA256SUMS")
FOLDERS = ("overlay", "model", "wheels")
# The copy lands here and is moved into place only once all of it has arrived and passed its checksums.
INCOMING = layout.BOARD_ROOT / ".incoming"


@dataclass(frozen=True)
class Remote:
    host: str
    user: str = layout.BOARD_USER
    control_path: str = "%d/.ssh/dpupose-%C"  # ssh tokens: %d home directory, %C hash of user/host/port

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}"

    @property
    def copy_login(self) -> str:
        """user@host for scp and rsync targets (LOGIN:PATH), which end the host at its first ':': an IPv6
        address goes in brackets there (ssh itself takes it bare, and keeps brackets as part of the name)."""
        return f"{self.user}@[{self.host}]" if ":" in self.host else self.login

    def ssh_options(self) -> list[str]:
        return [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control_path}",
            "-o",
            "ControlPersist=120",
        ]


def local_home() -> Path:
    """The home folder ssh's %d names: the user's passwd entry, not $HOME."""
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:  # no passwd entry (a container's arbitrary uid)
        return Path.home()


def ensure_ssh_dir(home: Path | None = None) -> Path:
    """Create ~/.ssh (mode 700) for the shared connection's socket (ControlPath %d/.ssh/...) when it is
    missing: ssh cannot create the socket there and every ssh call then fails (exit 255, "unix_listener:
    cannot bind to path"); ssh makes the folder itself only when it saves a host key."""
    folder = (home or local_home()) / ".ssh"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


# What a host name or a login may hold (and an IPv6 address's zone, after '%'): the printed commands name
# them unquoted, ssh expands them into a ProxyCommand or Match exec's shell line (%h, %r), and OpenSSH 9.6
# refuses shell characters there itself.
_LOGIN_CHARS = re.compile(r"[A-Za-z0-9._-]+")


def _login_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if any(c.isspace() for c in value):
        return "has blanks"
    if value.startswith("-"):
        return "starts with '-' (ssh would read it as an option)"
    if "@" in value:
        return "holds '@'"
    return None


def _odd_characters(value: str, ipv6: bool) -> str | None:
    """What a --host or --user holds beyond letters, digits, '.', '-' and '_' (an IPv6 address: its ':' and
    its zone's '%' too), or None."""
    allowed = value.replace(":", "").replace("%", "", 1) if ipv6 else value
    if not allowed or _LOGIN_CHARS.fullmatch(allowed):
        return None
    odd = sorted({c for c in allowed if not _LOGIN_CHARS.fullmatch(c)})
    return (
        f"holds {' '.join(repr(c) for c in odd)}: a board's name, address or login holds only letters, digits, "
        "'.', '-' and '_' (a shell would read the others)"
    )


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.partition("%")[0])  # fe80::1%eth0: a link-local address and its interface
    except ValueError:
        return False
    return True


def check_login(host: str, user: str) -> str:
    """UsageError for a --host or --user that ssh would misread: empty, with blanks (one word for ssh, two
    in the printed run command), starting with '-' (an ssh option), with '@' (a second user name), a
    host with brackets or ':' that is not an IPv6 address (a port: ssh would look the whole up as a name),
    or with any character beyond letters, digits, '.', '-' and '_' (a ';', '$(...)' or quote would run
    something in the printed commands, and in a ProxyCommand that ssh builds with %h or %r).
    Returns the host as ssh takes it: an IPv6 address given in brackets ([fe80::1]) without them."""
    if host.startswith("[") and host.endswith("]") and _is_ipv6(host[1:-1]):
        host = host[1:-1]
    for option, value in (("--host", host), ("--user", user)):
        what = _login_problem(value)
        if what is None and option == "--host" and ("[" in value or "]" in value):
            what = "has brackets, which go only around an IPv6 address"
        elif what is None and option == "--host" and ":" in value and not _is_ipv6(value):
            what = "holds ':' but is not an IPv6 address (a port goes in ~/.ssh/config: Host NAME, Port N)"
        elif what is None:
            what = _odd_characters(value, ipv6=option == "--host" and _is_ipv6(value))
        if what is not None:
            raise UsageError(
                f"{option} {value!r} {what}: give the board's name or address with --host and the login with "
                "--user (e.g. --host pynq --user xilinx)"
            )
    return host


def ssh_argv(remote: Remote, command: str, *, tty: bool = False) -> list[str]:
    return ["ssh", *remote.ssh_options(), *(["-t"] if tty else []), remote.login, command]


def mkdir_argv(remote: Remote) -> list[str]:
    return ssh_argv(remote, f"mkdir -p {shlex.quote(str(INCOMING))}")


def rsync_argv(remote: Remote, local_root: Path) -> list[str]:
    """rsync the laid-out folder into INCOMING; --delete prunes only inside the listed folders (what an
    earlier copy cut short left there is reused)."""
    rsh = shlex.join(["ssh", *remote.ssh_options()])
    sources = [str(local_root / name) for name in TOP_LEVEL]
    return ["rsync", "-rtz", "--delete", "-e", rsh, *sources, f"{remote.copy_login}:{INCOMING}/"]


def scp_argvs(remote: Remote, local_root: Path) -> list[list[str]]:
    """Without rsync: empty INCOMING, then scp -r into it (scp cannot prune)."""
    incoming = shlex.quote(str(INCOMING))
    sources = [str(local_root / name) for name in TOP_LEVEL]
    return [
        ssh_argv(remote, f"rm -rf {incoming} && mkdir -p {incoming}"),
        ["scp", *remote.ssh_options(), "-r", *sources, f"{remote.copy_login}:{INCOMING}/"],
    ]


def move_into_place_argv(remote: Remote) -> list[str]:
    """Replace the deployed folders and files with INCOMING's (checked): the old folders are moved aside
    first, so none ends up holding files of both copies."""
    root, incoming = shlex.quote(str(layout.BOARD_ROOT)), shlex.quote(INCOMING.name)
    old = ".previous"
    return ssh_argv(
        remote,
        f"cd {root} && rm -rf {old} && mkdir {old} && "
        f"for d in {' '.join(FOLDERS)}; do if [ -e $d ]; then mv $d {old}/; fi; done && "
        f"mv {' '.join(f'{incoming}/{n}' for n in TOP_LEVEL)} . && rm -rf {incoming} {old}",
    )


def install_argv(remote: Remote, wheel: str) -> list[str]:
    command = f"sudo bash {layout.SETUP_SCRIPT} {shlex.quote(str(layout.WHEEL_DIR / wheel))}"
    return ssh_argv(remote, command, tty=True)


def checksum_argv(remote: Remote) -> list[str]:
    return ssh_argv(remote, f"cd {shlex.quote(str(INCOMING))} && sha256sum --check --quiet SHA256SUMS")


def cat_argv(remote: Remote, path: PurePosixPath) -> list[str]:
    return ssh_argv(remote, f"cat {shlex.quote(str(path))}")


def lay_out(payload: artifacts.Payload, manifest_json: str, sums: str, root: Path) -> None:
    """Copy the payload into `root` as it will be on the board (layout.BOARD_ROOT)."""
    for src, dest in payload.files:
        local = root / dest.relative_to(layout.BOARD_ROOT)
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, local)
    for name in ("overlay", "model", "wheels"):
        (root / name).mkdir(exist_ok=True)
    (root / "manifest.json").write_text(manifest_json)
    (root / "SHA256SUMS").write_text(sums)


@dataclass(frozen=True)
class DeployReport:
    commands: list[list[str]]
    verdict: str  # fingerprint check before copying
    deployed: str  # fingerprint check of what is on the board
    run_command: str


def _remote_fingerprint(runner: CommandRunner, remote: Remote, path: PurePosixPath) -> str | None:
    proc = runner.run(cat_argv(remote, path), capture=True, check=False)
    if proc.returncode != 0:
        return None
    if path.name == "arch.json":
        return artifacts.arch_json_fingerprint(proc.stdout, f"{path} on the board")
    try:
        value = loads_json(proc.stdout).get("fingerprint")
    except (ValueError, AttributeError):
        raise ArtifactError(f"{path} on the board is not valid JSON: the copy did not complete; deploy again") from None
    return None if value is None else str(value)


def deploy(
    host: str,
    overlay: str | Path,
    model: str | Path,
    *,
    user: str = layout.BOARD_USER,
    wheel: str | Path | None = None,
    dry_run: bool = False,
    runner: CommandRunner | None = None,
    echo: Callable[[str], None] = print,
    use_rsync: bool | None = None,
) -> DeployReport:
    """Deploy to `host`; with dry_run, print the command lines instead of running them."""
    host = check_login(host, user)
    runner = runner or CommandRunner()
    remote = Remote(host, user)
    overlay, model = Path(overlay), Path(model)
    rsync = have_tool("rsync") if use_rsync is None else use_rsync
    artifacts.precheck(overlay, model)  # before the wheel is built
    with tempfile.TemporaryDirectory(prefix="dpupose-deploy-") as tmp_name:
        tmp = Path(tmp_name)
        if wheel is not None:
            wheel_path = wheel_file(Path(wheel))
            check_wheel(wheel_path)
        elif dry_run:
            wheel_path = tmp / wheel_name()  # named, not built
            wheel_path.touch()
        else:
            wheel_path = build_wheel(tmp / "wheel")
        payload = artifacts.collect(overlay, model, wheel_path, setup_script())
        echo(payload.verdict)
        if payload.backend_note:
            echo(f"note: {payload.backend_note}")
        run_command = layout.run_command(payload.backend)
        manifest = build_manifest(
            payload.files,
            overlay_fingerprint=payload.overlay_fp,
            plan_fingerprint=payload.plan_fp,
            wheel=wheel_path.name,
        )
        root = tmp / "dpupose"
        lay_out(payload, manifest.to_json(), manifest.sha256sums(layout.BOARD_ROOT), root)
        copy = [rsync_argv(remote, root)] if rsync else scp_argvs(remote, root)
        # The copy is checked on the board before it replaces anything or is installed.
        commands = [
            mkdir_argv(remote),
            *copy,
            checksum_argv(remote),
            move_into_place_argv(remote),
            install_argv(remote, wheel_path.name),
        ]
        if dry_run:
            for argv in commands:
                echo(shlex.join(argv))
            echo(f"then, to run it: ssh -t {remote.login} {shlex.quote(run_command)}")
            return DeployReport(commands, payload.verdict, "not deployed (dry run)", run_command)
        for tool in sorted({argv[0] for argv in commands}):
            require_tool(tool)  # all of them before the first command runs
        ensure_ssh_dir()
        for argv in commands:
            try:
                runner.run(argv)
            except ToolFailed as exc:
                if exc.returncode == 255 and argv[0] in ("ssh", "scp", "rsync"):  # ssh's own failure
                    raise DeviceError(f"{exc}; {_ssh_failed_hint(remote)}") from None
                raise
        deployed = _check_deployed(runner, remote, payload.plan_fp)
    echo(deployed)
    echo(f"run it on the board: ssh -t {remote.login} {shlex.quote(run_command)}")
    return DeployReport(commands, payload.verdict, deployed, run_command)


def _ssh_failed_hint(remote: Remote) -> str:
    return (
        f"ssh could not reach or log in to {remote.login} (exit status 255): check that the board is up and "
        f"on the network (ping {remote.host}); after a card is flashed again the board has a new host key, "
        f"which ssh refuses until the old one is removed: ssh-keygen -R {remote.host}"
    )


def _check_deployed(runner: CommandRunner, remote: Remote, plan_fp: str | None) -> str:
    """Compare the fingerprint of the overlay now on the board with the model's split plan."""
    board_fp = _remote_fingerprint(runner, remote, layout.OVERLAY_DIR / "arch.json")
    board_plan_fp = _remote_fingerprint(runner, remote, layout.MODEL_DIR / layout.PLAN_FILE)
    if board_plan_fp != plan_fp:
        raise ArtifactError(
            f"the split plan on the board has fingerprint {board_plan_fp}, the deployed one {plan_fp}: "
            "the copy did not complete; deploy again"
        )
    try:
        verdict = artifacts.compare_fingerprints(
            board_fp,
            board_plan_fp,
            overlay=f"{remote.host}:{layout.OVERLAY_DIR}",
            model=f"{remote.host}:{layout.MODEL_DIR}",
        )
    except FingerprintMismatch as exc:
        raise FingerprintMismatch(f"on the board: {exc}") from None
    return f"on the board: {verdict}"
