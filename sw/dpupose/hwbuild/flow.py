"""The hardware build as an ordered list of named steps that can start and stop anywhere and resume.

    generate  params.tcl, platform.xdc, dpu_conf.vh, prj_config, arch.json        (no tool)
    platform  vivado + hw/tcl/platform.tcl  -> platform/platform.xsa
    kernel    vivado + hw/tcl/kernel.tcl    -> kernel/dpu.xo
    link      v++ -l                        -> link/dpu.xclbin
    collect   the link's bit/hwh/xclbin/arch.json, checked, into collect/          (no tool)
    report    timing must be met; publish dpu.bit/.hwh/.xclbin/arch.json + build_info.json (no tool)

A tool step writes a stamp (stamps/<step>.json) with hashes of everything it read (files, scripts, the
tool's version) and of what it wrote; while those still match, the step is skipped. So a failed link
re-runs only the link, and editing the DPU options re-runs kernel and link but not the platform. The
published files are taken down as soon as any tool step (or collect) has to run, and come back only from
`report`; a complete set (one build's four files and build_info.json) is first kept in previous/, which it
replaces whole, so a re-run that fails hours later has not lost the last bitstream that worked. A step that
fails or is interrupted leaves stamps/<step>.failed.json (when, why, its log), removed when it next succeeds,
so that `hw status` says "failed" rather than "not built".
`generate` runs before any selection (it is cheap and rewrites only changed files), so a later step never
reads files generated from an older version of the configuration.

API:
    STEPS, step_names()
    BuildContext.from_preflight(preflight, paths, request)
    run_build(ctx, start=None, stop=None, force=False) -> list[StepRun]
    step_status(ctx) -> dict[str, str]
    published_set(folder) -> build_info of the complete set in folder, or None
    set_problems(folder) -> (build_info or None, why the set in folder is not complete)
    stopped_swap(paths) -> the kept set a rebuild killed while replacing previous/ left hidden, or None
    artifact_change(path, entry) -> how a published file differs from its build_info.json entry, or None
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dpupose.dpu.board import Board
from dpupose.dpu.config import DpuConfig
from dpupose.dpu.writers import write_arch_json, write_dpu_conf_vh, write_if_changed, write_prj_config
from dpupose.errors import ArtifactError, UsageError, shortlist
from dpupose.fsio import (
    atomic_dir,
    json_text,
    loads_json,
    moved_aside,
    read_own_json,
    same_file,
    sha256_file,
    signals_deferred,
    temporaries,
    what_is_at,
    within,
)
from dpupose.hwbuild import collect as collect_mod
from dpupose.hwbuild.check import BuildRequest, Preflight
from dpupose.hwbuild.commands import kernel_argv, link_argv, platform_argv
from dpupose.hwbuild.inputs import POSTLINK_TCL, BoardFiles, TrdInfo, extract_trd, trd_unpacked
from dpupose.hwbuild.layout import DELIVERABLES, PUBLISHED, BuildPaths
from dpupose.hwbuild.params import write_params_tcl, write_platform_xdc
from dpupose.hwbuild.platform import PlatformRecord
from dpupose.hwbuild.runner import run_tool
from dpupose.hwbuild.tools import ToolInfo

log = logging.getLogger(__name__)


@dataclass
class BuildContext:
    cfg: DpuConfig
    board: Board
    pfm: PlatformRecord
    paths: BuildPaths
    request: BuildRequest
    trd: TrdInfo | None = None
    board_files: BoardFiles | None = None
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    unpublished: bool = False  # this build took the published set down (kept in previous/ where complete)
    # Where to unpack a TRD archive that is not unpacked in trd/ already, if not there: `hw status`, which writes
    # nothing in the build folder, unpacks it in a temporary folder to hash the link's post-link script.
    trd_scratch: Path | None = None
    _trd_root: Path | None = None

    @classmethod
    def from_preflight(cls, p: Preflight, paths: BuildPaths, request: BuildRequest) -> BuildContext:
        assert p.cfg is not None and p.board is not None and p.pfm is not None
        return cls(p.cfg, p.board, p.pfm, paths, request, p.trd, p.board_files, dict(p.tools))

    def trd_root(self) -> Path:
        """The TRD folder (the archive is unpacked into build/hw/<config>/trd/ on first use)."""
        if self._trd_root is None:
            if self.trd is None:
                raise UsageError(
                    "this step needs the DPU TRD: pass --trd /path/to/DPUCZDX8G.tar.gz (DPU_TRD= with make)"
                )
            dest = self.paths.trd_dir
            if self.trd_scratch is not None and self.trd.archive and not trd_unpacked(self.trd, dest):
                dest = self.trd_scratch
            self._trd_root = extract_trd(self.trd, dest).resolve()
        return self._trd_root

    def tool(self, name: str) -> ToolInfo:
        if name not in self.tools:
            raise UsageError(f"{name} was not checked before the build; run `dpupose hw check`")
        return self.tools[name]


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[BuildContext], None]
    outputs: Callable[[BuildContext], list[Path]]
    requires: Callable[[BuildContext], list[tuple[Path, str]]]  # (file, step that makes it)
    inputs: Callable[[BuildContext], dict[str, str]] | None = None  # None: no stamp, always runs
    # The inputs as an earlier version's stamp recorded them: such a stamp still counts where they match.
    earlier_inputs: Callable[[BuildContext], dict[str, str]] | None = None


@dataclass(frozen=True)
class StepRun:
    step: str
    status: str  # "ran" or "up to date"
    seconds: float


# Steps ------------------------------------------------------------------------------------------------
def _generate(ctx: BuildContext) -> None:
    generate_files(ctx.cfg, ctx.board, ctx.pfm, ctx.paths)


def generate_files(cfg: DpuConfig, board: Board, pfm: PlatformRecord, p: BuildPaths) -> None:
    """The generate step: gen/'s files (GEN_FILES) for `cfg`, each written only where it changed."""
    write_params_tcl(cfg, board, pfm, p.params)
    write_platform_xdc(cfg, board, pfm, p.xdc)
    write_dpu_conf_vh(cfg, p.dpu_conf)
    write_prj_config(cfg, board, p.prj_config)
    write_arch_json(cfg, p.arch_json)


def _board_repo(ctx: BuildContext) -> Path:
    if ctx.request.board_repo is None or ctx.board_files is None:
        raise UsageError(
            "the platform step needs the board files: pass --board-repo /path/to/the/board/repo (BOARD_REPO= with make)"
        )
    return Path(ctx.request.board_repo).expanduser().resolve()


def _fresh(folder: Path) -> None:
    """Start a tool step in an empty scratch folder (a half-built project from a failed run is dropped)."""
    if folder.exists():
        shutil.rmtree(folder)


def _platform(ctx: BuildContext) -> None:
    p = ctx.paths
    argv = platform_argv(p, _board_repo(ctx))
    _fresh(p.platform_dir)
    run_tool(argv, cwd=p.platform_dir, log_file=p.logs / "platform.log", expect=[p.xsa])


def file_digest(path: Path) -> str:
    """sha256_file of `path`; an OSError it raises (EIO, a folder where the file was) names `path` where it
    named no file (a read error does not), so that whoever reports it can say which file it was."""
    try:
        return sha256_file(path)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, os_error_words(exc), str(path)) from exc  # of the same subclass, by errno


def os_error_words(exc: OSError) -> str:
    """What an OSError says went wrong: its own words (strerror), else its text, else its type's name."""
    return exc.strerror or str(exc) or type(exc).__name__


def read_failure(exc: OSError) -> str:
    """An OSError as 'FILE: what went wrong'."""
    what = os_error_words(exc)
    return f"{exc.filename}: {what}" if exc.filename is not None else what


def _board_folder_digest(board_files: BoardFiles) -> str:
    """sha256 of the board's folder in the board repository (board.xml, preset.xml, part0_pins.xml ...), by
    the files' names within it and their contents: not where the repository is, so a build folder copied to
    another machine, whose checkout of the board files has another path, stays up to date."""
    folder = board_files.board_xml.parent
    h = hashlib.sha256()
    for name in sorted(f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()):
        h.update(f"{name}\0{file_digest(folder / name)}\0".encode())
    return h.hexdigest()


def _platform_inputs(ctx: BuildContext) -> dict[str, str]:
    p = ctx.paths
    _board_repo(ctx)  # the step needs the board files
    assert ctx.board_files is not None  # _board_repo checked it
    return {
        "params.tcl": file_digest(p.params),
        "platform.xdc": file_digest(p.xdc),
        "platform.tcl": file_digest(p.platform_tcl),
        "board files": _board_folder_digest(ctx.board_files),
        "vivado": ctx.tool("vivado").banner,
    }


def _platform_inputs_by_path(ctx: BuildContext) -> dict[str, str]:
    """The platform inputs as stamps of earlier versions named them: board.xml and the repository's path."""
    inputs = _platform_inputs(ctx)
    del inputs["board files"]
    assert ctx.board_files is not None
    return {**inputs, "board.xml": file_digest(ctx.board_files.board_xml), "board_repo": str(_board_repo(ctx))}


def _kernel(ctx: BuildContext) -> None:
    p = ctx.paths
    argv = kernel_argv(p, ctx.trd_root())
    _fresh(p.kernel_dir)
    run_tool(argv, cwd=p.kernel_dir, log_file=p.logs / "kernel.log", expect=[p.xo])


def _kernel_inputs(ctx: BuildContext) -> dict[str, str]:
    p = ctx.paths
    if ctx.trd is None:
        raise UsageError("the kernel step needs the DPU TRD: pass --trd /path/to/DPUCZDX8G.tar.gz (DPU_TRD= with make)")
    return {
        "params.tcl": file_digest(p.params),
        "dpu_conf.vh": file_digest(p.dpu_conf),
        "kernel.tcl": file_digest(p.kernel_tcl),
        "trd": ctx.trd.digest(),
        "vivado": ctx.tool("vivado").banner,
    }


def _link(ctx: BuildContext) -> None:
    p = ctx.paths
    argv = link_argv(p, ctx.trd_root(), postlink=ctx.trd is not None and ctx.trd.has_postlink)
    _fresh(p.link_dir)  # stale reports or bitstreams must not be collected
    run_tool(argv, cwd=p.root, log_file=p.logs / "link.log", expect=[p.linked_xclbin])


def _link_inputs(ctx: BuildContext) -> dict[str, str]:
    p = ctx.paths
    if ctx.trd is None:
        raise UsageError("the link step needs the DPU TRD: pass --trd /path/to/DPUCZDX8G.tar.gz (DPU_TRD= with make)")
    postlink = ctx.trd_root() / POSTLINK_TCL
    return {
        "platform.xsa": file_digest(p.xsa),
        "dpu.xo": file_digest(p.xo),
        "prj_config": file_digest(p.prj_config),
        "postlink": file_digest(postlink) if ctx.trd.has_postlink else "",
        "v++": ctx.tool("v++").banner,
    }


def _collect(ctx: BuildContext) -> None:
    collect_mod.collect(ctx.paths, ctx.cfg)


def _stamped_tools(ctx: BuildContext) -> dict[str, str]:
    """The tool versions that built the current outputs (from the stamps), else the ones checked now."""
    tools = {name: info.banner for name, info in ctx.tools.items()}
    for step, tool in (("platform", "vivado"), ("kernel", "vivado"), ("link", "v++")):
        inputs = (_read_stamp(ctx.paths.stamps / f"{step}.json") or {}).get("inputs")
        banner = inputs.get(tool) if isinstance(inputs, dict) else None
        if not isinstance(banner, str):
            continue
        tools[tool if step != "kernel" or banner == tools.get("vivado") else "vivado (kernel)"] = banner
    return dict(sorted(tools.items()))


def _report(ctx: BuildContext) -> None:
    facts: dict[str, Any] = {
        "tools": _stamped_tools(ctx),
        "trd": {"path": str(ctx.trd.path), "ip_version": ctx.trd.ip_version} if ctx.trd else None,
        "board_files": (
            {"version": ctx.board_files.version, "board_xml": str(ctx.board_files.board_xml)}
            if ctx.board_files
            else None
        ),
        "clock_override": ctx.request.i_know,
        "step_seconds": {k: round(v, 1) for k, v in ctx.seconds.items()},
    }
    info = collect_mod.report(ctx.paths, ctx.cfg, ctx.board, facts)
    log.info("timing met (WNS %.3f ns); published %s", info["timing"]["wns_ns"], ", ".join(DELIVERABLES))


GEN_FILES = ("params.tcl", "platform.xdc", "dpu_conf.vh", "prj_config", "arch.json")  # what generate writes in gen/


def _gen_files(ctx: BuildContext) -> list[tuple[Path, str]]:
    return [(ctx.paths.gen / name, "generate") for name in GEN_FILES]


STEPS: tuple[Step, ...] = (
    Step("generate", _generate, lambda c: [], lambda c: []),
    Step("platform", _platform, lambda c: [c.paths.xsa], _gen_files, _platform_inputs, _platform_inputs_by_path),
    Step("kernel", _kernel, lambda c: [c.paths.xo], _gen_files, _kernel_inputs),
    Step(
        "link",
        _link,
        lambda c: [c.paths.linked_xclbin],
        lambda c: [*_gen_files(c), (c.paths.xsa, "platform"), (c.paths.xo, "kernel")],
        _link_inputs,
    ),
    Step("collect", _collect, lambda c: [], lambda c: [(c.paths.linked_xclbin, "link")]),
    Step("report", _report, lambda c: [], lambda c: [(c.paths.root / "collect" / n, "collect") for n in DELIVERABLES]),
)
TOOL_STEPS = ("platform", "kernel", "link")


def step_names() -> list[str]:
    return [s.name for s in STEPS]


def select(start: str | None, stop: str | None) -> list[Step]:
    names = step_names()
    for given in (start, stop):
        if given is not None and given not in names:
            raise UsageError(f"unknown step {given!r}; the steps are {', '.join(names)}")
    i = names.index(start) if start else 0
    j = names.index(stop) if stop else len(names) - 1
    if i > j:
        raise UsageError(f"--from {start} comes after --to {stop}; the order is {' -> '.join(names)}")
    return list(STEPS[i : j + 1])


def _stamp_path(ctx: BuildContext, step: Step) -> Path:
    return ctx.paths.stamps / f"{step.name}.json"


def _read_stamp(path: Path) -> dict[str, Any] | None:
    """A stamp's JSON object, or None where it cannot be read or is no object: a damaged stamp (valid JSON
    of another shape, a list or a string, ended status and build in AttributeError tracebacks) marks its step
    stale, as a missing one marks it not built."""
    stamp = read_own_json(path)  # a regular file only: a FIFO there was waited on for ever (no stamp)
    return stamp if isinstance(stamp, dict) else None


def _up_to_date(ctx: BuildContext, step: Step) -> bool:
    if step.inputs is None:
        return False
    stamp = _read_stamp(_stamp_path(ctx, step))
    if stamp is None:
        return False
    outputs = step.outputs(ctx)
    if not all(o.is_file() for o in outputs):
        return False
    recorded = stamp.get("outputs")
    named = _stamp_outputs(ctx, outputs)
    # Earlier versions named the outputs by their absolute paths, which a moved build folder no longer has.
    absolute = {str(ctx.paths.root / name): digest for name, digest in named.items()}
    if recorded not in (named, absolute):
        return False
    inputs = stamp.get("inputs")
    if inputs == step.inputs(ctx):
        return True
    return step.earlier_inputs is not None and inputs == step.earlier_inputs(ctx)


def _stamp_outputs(ctx: BuildContext, outputs: list[Path]) -> dict[str, str]:
    """A stamp's outputs and their sha256, named relative to the build folder: a folder moved or copied
    whole (another checkout, another machine) stays up to date."""
    return {o.relative_to(ctx.paths.root).as_posix(): file_digest(o) for o in outputs}


def _write_stamp(ctx: BuildContext, step: Step) -> None:
    assert step.inputs is not None
    stamp = {
        "generated_by": "dpupose.hwbuild.flow; delete to force this step",
        "step": step.name,
        "inputs": step.inputs(ctx),
        "outputs": _stamp_outputs(ctx, step.outputs(ctx)),
    }
    write_if_changed(_stamp_path(ctx, step), json_text(stamp, indent=2) + "\n")


def artifact_change(path: Path, entry: Any) -> str | None:
    """How the file `path` differs from what its `artifacts` entry in build_info.json (`entry`) records: its
    size ("N bytes, M as published"), or where the entry has its sha256 (recorded since build_info.json has
    it) its contents ("same size, not the sha256 published": an edit or a copy of another build's file of
    the same size). None where it matches, where the entry records neither, or where only the size can be
    read (a file this user may not read). OSError where `path` cannot be examined."""
    size = entry.get("bytes") if isinstance(entry, dict) else None
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    if isinstance(size, int) and not isinstance(size, bool):
        now = path.stat().st_size
        if now != size:
            return f"{now} bytes, {size} as published"
    if isinstance(digest, str):
        try:
            now_digest = file_digest(path)
        except PermissionError:
            # Not readable to this user (its size was): judged by its size, as before the sha256 was recorded;
            # counted incomplete, the set was removed rather than kept in previous/.
            return None
        if now_digest != digest:
            return "same size, not the sha256 published"
    return None


def set_problems(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The build_info.json of the published set in `folder` (the build folder, or its previous/) and what
    keeps it from being one build's complete set: the four files and build_info.json must each be a file (no
    link), and each deliverable the one build_info.json records (its sha256, or its size where an older
    build_info.json has no sha256). ([...], []) for a complete set; (None, [...]) where build_info.json
    cannot be read."""
    problems = []
    for name in PUBLISHED:
        path = folder / name
        if path.is_symlink():
            problems.append(f"{name} is a link")
        elif not path.is_file():
            problems.append(f"{name} is missing" if not os.path.lexists(path) else f"{name} is not a file")
    info_path = folder / "build_info.json"
    if info_path.is_symlink() or not info_path.is_file():
        return None, problems
    try:
        info = loads_json(info_path.read_text())
    except (OSError, ValueError) as exc:
        return None, [*problems, f"build_info.json cannot be read ({exc})"]
    artifacts = info.get("artifacts") if isinstance(info, dict) else None
    if not isinstance(artifacts, dict):
        return None, [*problems, "build_info.json records no artifacts"]
    for name in DELIVERABLES:
        if not (folder / name).is_file() or (folder / name).is_symlink():
            continue
        entry = artifacts.get(name)
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256", "") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(digest, str):
            problems.append(f"build_info.json records no size or sha256 for {name}")
            continue
        try:
            change = artifact_change(folder / name, entry)
        except OSError as exc:
            problems.append(f"{name} cannot be read ({os_error_words(exc)})")
            continue
        if change:
            problems.append(f"{name} changed since its build published it ({change})")
    return info, problems


def published_set(folder: Path) -> dict[str, Any] | None:
    """The build_info.json of the complete published set in `folder` (the build folder, or its previous/):
    the four files and build_info.json, each a file (no link), each deliverable the one build_info.json
    records (set_problems: its sha256, or its size for an older build_info.json), so all five are one
    build's. None where any of that does not hold."""
    info, problems = set_problems(folder)
    return info if info is not None and not problems else None


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link (instant, no second copy of a bitstream on disk), or a copy where the file system has none."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _unpublish(ctx: BuildContext) -> None:
    """Take the published set down before a step that makes new files runs, so that no mix of an old and a new
    build is ever published. A complete set (published_set) is kept in previous/ first: its files are linked
    into a new folder that replaces an older previous/ only once it is whole (atomic_dir), and only then are
    the published names removed; an error or Ctrl-C before that leaves the published set and the older
    previous/ as they were. An incomplete set (a file missing, or not the one build_info.json records) is
    not one build's and is removed without replacing previous/."""
    paths = ctx.paths
    ctx.unpublished = True
    if published_set(paths.root) is not None:
        _refuse_shell_in_previous(paths)
        try:
            with atomic_dir(paths.previous) as staging:
                for name in PUBLISHED:
                    _link_or_copy(paths.deliverable(name), staging / name)
        except OSError as exc:
            # The swap renames previous/ aside within the build folder: a mount point there (another file
            # system, a bind mount) refuses (EBUSY, EXDEV), and the OSError named two paths and no remedy.
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            raise UsageError(
                f"{paths.previous} could not be replaced ({exc.strerror}): a rebuild replaces previous/ whole by "
                f"renaming it within {paths.root}, which a mount point (another file system, a bind mount) does "
                "not allow: unmount it, or copy its files elsewhere and remove it; nothing was taken down"
            ) from None
        # On disk before the published names go: atomic_dir flushes the files, not the folders' entries (the
        # links in previous/, its rename into place), and a file system that does not write metadata in order
        # could keep the removals below and lose those after a power cut: the set in neither place.
        _sync_folder(paths.previous)
        _sync_folder(paths.root)
        log.info(
            "kept the published %s in %s (the last set published; a rebuild that fails leaves it there)",
            ", ".join(PUBLISHED),
            paths.previous,
        )
    with signals_deferred():  # all five go, or none
        for name in PUBLISHED:
            paths.deliverable(name).unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Flush `folder`'s entries (names added, removed, renamed) to disk; a file system that cannot (an error
    from fsync on a folder: some network ones) is left to its own ordering, as before."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.debug("could not flush %s: %s", folder, exc)
    finally:
        os.close(fd)


def _collects_the_published_set(ctx: BuildContext) -> bool:
    """Whether `collect`, about to run with no tool step run before it in this build (every `hw build` whose
    tool steps are up to date, or `--from collect`), gathers the set that is published: a complete set
    (published_set) whose four files are byte for byte the link's outputs. Taken down, it would replace
    previous/ with itself (report publishes the same files again), and the set published before it, the one
    to swap back to, was lost to a build that changed nothing. It stays published instead: collect and report
    write the same bytes over it, so no mix of builds is published at any time."""
    root = ctx.paths.root
    if ctx.unpublished or published_set(root) is None:
        return False
    try:
        found = collect_mod.link_outputs(ctx.paths, warn=False)
        return all(file_digest(found[n]) == file_digest(root / n) for n in DELIVERABLES)
    except (ArtifactError, OSError):
        return False


def _refuse_shell_in_previous(paths: BuildPaths) -> None:
    """UsageError, before anything is moved, where the current folder is previous/ or inside it, by any name
    (fsio.within: through a link, or a bind mount of previous/ or of a folder above it, which real paths do not
    tie to it): atomic_dir refuses to replace it (the shell would be left in a removed folder), but its message
    asks for another output folder, which the user did not give and cannot choose."""
    try:
        cwd = Path.cwd()
    except OSError:  # the current folder was removed: it is not previous/
        return
    if within(cwd, paths.previous):
        if cwd == Path(os.path.realpath(paths.previous)):
            where = f"is {paths.previous}"
        else:  # below it, or it (or below it) by another name
            where = f"{cwd} is {'' if same_file(cwd, paths.previous) else 'inside '}{paths.previous}"
        raise UsageError(
            f"the current folder {where}, which this rebuild replaces with the set it takes down: cd out of it "
            f"(cd {paths.root}) and build again; nothing was changed"
        )


def _failed_path(ctx: BuildContext, step: Step) -> Path:
    return ctx.paths.stamps / f"{step.name}.failed.json"


def _log_file(ctx: BuildContext, step: Step) -> Path:
    return ctx.paths.logs / f"{step.name}.log"


def _log_state(ctx: BuildContext, step: Step) -> tuple[int, int, int] | None:
    """The step's log as it is now (inode, size, modification time), None where there is none."""
    try:
        st = _log_file(ctx, step).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _record_failure(ctx: BuildContext, step: Step, exc: BaseException, log_before: tuple[int, int, int] | None) -> None:
    """Write stamps/<step>.failed.json for a run of `step` that raised `exc`: when, why (the message's first
    line), and the step's log where this run wrote it (run_tool starts it as it starts the tool; one as it
    was before the run, `log_before`, is an earlier run's). Removed by the step's next successful run."""
    log_file = _log_file(ctx, step)
    now = _log_state(ctx, step)
    wrote_log = step.name in TOOL_STEPS and now is not None and now != log_before
    interrupted = isinstance(exc, KeyboardInterrupt)
    error = "" if interrupted else (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
    record = {
        "generated_by": "dpupose.hwbuild.flow: this step's last run did not finish; removed when it next does",
        "step": step.name,
        "outcome": "interrupted" if interrupted else "failed",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "error": error if len(error) <= 200 else error[:197] + "...",
        "log": log_file.relative_to(ctx.paths.root).as_posix() if wrote_log else None,
    }
    try:
        write_if_changed(_failed_path(ctx, step), json_text(record, indent=2) + "\n")
    except OSError as err:  # the step's own error is the one to report
        log.warning("could not record the failure of step %s in %s: %s", step.name, _failed_path(ctx, step), err)


def _failure(ctx: BuildContext, step: Step) -> str | None:
    """How the last run of `step` ended, where it failed or was interrupted (its .failed.json), else None."""
    path = _failed_path(ctx, step)
    if not path.is_file():
        return None
    record = _read_stamp(path) or {}
    outcome = "interrupted" if record.get("outcome") == "interrupted" else "failed"
    parts = []
    try:
        when = datetime.fromisoformat(record["when"]).astimezone()
        parts.append(f"last run {when:%Y-%m-%d %H:%M}")
    except (KeyError, TypeError, ValueError):
        pass
    logged, error = record.get("log"), record.get("error")
    if isinstance(logged, str) and logged:
        parts.append(f"see {ctx.paths.root / logged}")
    elif isinstance(error, str) and error:
        parts.append(error)
    return f"{outcome} ({'; '.join(parts)})" if parts else outcome


def step_status(ctx: BuildContext) -> dict[str, str]:
    """For each tool step: "up to date", "stale" (stamp present, inputs or outputs changed), "out of date (the
    configuration differs: gen/FILE ... would change)", "failed (last run WHEN; see LOG)" or "interrupted (...)"
    (no stamp, and its last run did not finish) or "not built"; and any other step whose last run did not
    finish, "failed (last run WHEN; ERROR)".
    Each tool step is judged as the next `hw build` with `ctx.cfg` judges it: the build first generates gen/'s
    files from the configuration given, which need not be the one gen/ holds (a .toml of one's own named like a
    shipped one shares its folder; the file may have been edited since), so the stamps are compared with the files
    generate would write, written apart in a temporary folder (nothing is written in the build folder: a TRD
    archive not unpacked in trd/, whose post-link script the link's stamp hashes, is unpacked there too). A step
    whose own inputs hold but that reads what a tool step running before it makes is "up to date, but STEP runs
    first (a FILE that differs runs it again)": the build runs it again only if that file comes out different."""
    # Made and removed in this frame, not by tempfile.TemporaryDirectory, which left the folder (the generated
    # files, the TRD's tree) in TMPDIR where Ctrl-C or SIGTERM came inside mkdtemp, after it made it, or during
    # its removal.
    tmp: str | None = None
    try:
        with signals_deferred():  # until `tmp` names the folder, for the finally to remove it
            tmp = tempfile.mkdtemp(prefix="dpupose-status-")
        generated = dataclasses.replace(ctx.paths, generated=Path(tmp) / "gen")
        ahead = dataclasses.replace(ctx, paths=generated, trd_scratch=Path(tmp) / "trd")
        generate_files(ctx.cfg, ctx.board, ctx.pfm, ahead.paths)
        changed = {n for n in GEN_FILES if not _same_bytes(ctx.paths.gen / n, ahead.paths.gen / n)}
        return _step_lines(ahead, changed)
    finally:
        if tmp is not None:
            try:
                # Held back: rmtree closes a folder's descriptor again when a signal follows its close, and the
                # signal became an OSError (EBADF), said as the command's error.
                with signals_deferred():
                    shutil.rmtree(tmp, ignore_errors=True)
            finally:  # Ctrl-C or SIGTERM as the first began, before it removed anything
                shutil.rmtree(tmp, ignore_errors=True)


def _same_bytes(path: Path, other: Path) -> bool:
    """Whether `path` is a regular file (a FIFO there is not waited on) holding what `other` holds."""
    try:
        return path.is_file() and path.read_bytes() == other.read_bytes()
    except OSError:
        return False


def _step_lines(ctx: BuildContext, changed: set[str]) -> dict[str, str]:
    """step_status's lines, `ctx` reading the generated files as generate would write them now, which differ from
    gen/'s where named in `changed`."""
    out = {}
    runs: list[str] = []  # the tool steps so far that a build runs again
    for step in STEPS:
        failure = _failure(ctx, step)
        if step.inputs is None:
            if failure:
                out[step.name] = failure
            continue
        if not _stamp_path(ctx, step).is_file():
            out[step.name] = failure or "not built"
            runs.append(step.name)
            continue
        try:
            if _up_to_date(ctx, step):
                out[step.name] = "up to date" + _after(ctx, step, runs)
            else:
                out[step.name] = _why_not_up_to_date(ctx, step, changed)
                runs.append(step.name)
        except OSError as exc:  # a file it hashes cannot be read (EIO, a folder where a file was)
            out[step.name] = f"built, cannot tell if current ({read_failure(exc)})"
        except UsageError as exc:
            out[step.name] = f"built, cannot tell if current ({exc})"
    return out


def _why_not_up_to_date(ctx: BuildContext, step: Step, changed: set[str]) -> str:
    """ "out of date (the configuration differs: ...)" where inputs of `step` that its stamp recorded are generated
    files that generate would write anew (`changed`) and differently; else "stale"."""
    assert step.inputs is not None
    recorded = (_read_stamp(_stamp_path(ctx, step)) or {}).get("inputs")
    now = step.inputs(ctx)
    if not isinstance(recorded, dict):
        return "stale"
    differ = [n for n in GEN_FILES if n in changed and n in now and recorded.get(n) != now[n]]
    if differ:
        return f"out of date (the configuration differs: {', '.join(f'gen/{n}' for n in differ)} would change)"
    return "stale"


def _after(ctx: BuildContext, step: Step, runs: list[str]) -> str:
    """For an up-to-date `step`, the tool steps in `runs` (run again by the build before it) whose outputs it
    reads: the build runs it again where one of those comes out different (a tool writes a new file each run)."""
    read = [(f.name, maker) for f, maker in step.requires(ctx) if maker in runs]
    if not read:
        return ""
    makers = list(dict.fromkeys(maker for _, maker in read))
    files = " or a ".join(name for name, _ in read)
    verb = "runs" if len(makers) == 1 else "run"
    return f", but {' and '.join(makers)} {verb} first (a {files} that differs runs {step.name} again)"


# What a build deletes (the step folders, emptied before each tool run) or replaces (the files it
# publishes and generates, and previous/, which keeps the set published before); logs/ and stamps/ only
# receive files of its own names, which it writes over: each tool's log (v++'s in logs/vpp/), each step's
# stamp and failure record.
BUILD_ENTRIES = (
    *("platform", "kernel", "link", "collect", "trd"),
    *PUBLISHED,
    *(f"gen/{n}" for n in GEN_FILES),
    "previous",
    *(f"logs/{n}.log" for n in step_names()),
    "logs/vpp",
    *(f"stamps/{n}{end}" for n in step_names() for end in (".json", ".failed.json")),
)


def check_build_folder(paths: BuildPaths) -> None:
    """Refuse a build folder that holds what a build would replace or delete, unless an earlier build made
    it (its gen/params.tcl says so): a user's own dpu.bit or platform/ there must not be lost. In a build's
    folder, previous/ (replaced whole by a rebuild) must hold only what a build put there."""
    root = paths.root
    if not root.exists():
        return
    if not root.is_dir():
        raise UsageError(f"{root} is {what_is_at(root)}, not a folder; choose another --out")
    # The folders a build writes its files into: a file (or a FIFO, a link to nothing) at one of their names
    # stopped the build after its first step, at the first write there ('cannot use .../stamps/generate.json:
    # Not a directory'), the generated files already written beside it.
    for name, holds in (("gen", "generated files"), ("logs", "tool logs"), ("stamps", "step records")):
        folder = root / name
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise UsageError(
                f"{folder} is {what_is_at(folder)}, where a build keeps its {holds} in a folder: move it elsewhere, "
                "or choose another --out"
            )
    if _made_by_a_build(paths):
        _check_step_folders(paths)
        _check_previous(paths)
        return
    clash = [n for n in BUILD_ENTRIES if (root / n).exists() or (root / n).is_symlink()]
    if clash:
        shown = shortlist(clash)
        raise UsageError(
            f"{root} is not a dpupose hardware build folder (it has no gen/params.tcl from an earlier build), "
            f"but holds {shown}, which a build would replace or delete: move "
            f"{'it' if len(clash) == 1 else 'them'} elsewhere, or choose another --out (a new or empty folder)"
        )


# The folders a build removes whole and makes again: each tool step's before it runs, collect's, and trd/ where
# a TRD archive is unpacked.
STEP_FOLDERS = ("platform", "kernel", "link", "collect", "trd")


def _check_step_folders(paths: BuildPaths) -> None:
    """UsageError, before anything runs, where a step folder of a build's folder is a link or no folder: a link
    (link/ moved to a bigger disk and linked back) stopped the build only at that step's start, once the steps
    before it had run and the published set was taken down, with shutil's 'Cannot call rmtree on a symbolic
    link' (the folder it points to is not the build's to empty: it may hold anything). trd/ is left to
    extract_trd: a link there to the TRD unpacked before is read as it is, and replaced, the folder it points to
    kept, where another TRD archive is unpacked."""
    for name in STEP_FOLDERS[:-1]:
        path = paths.root / name
        if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
            # A link is removed and nothing is lost; a file there may be the user's, moved as at gen/ or trd/.
            fix = (
                "remove the link (for a build on another disk, give --out there)"
                if path.is_symlink()
                else "move it elsewhere"
            )
            raise UsageError(
                f"{path} is {what_is_at(path)}, and a build removes {name}/ whole before it makes it again: {fix}"
            )


def check_inputs_outside_emptied_folders(ctx: BuildContext) -> None:
    """UsageError, before anything runs, where the TRD (archive or folder) or the board files' repository lies
    in a folder of the build folder that a build removes whole: the step folders platform/, kernel/, link/ and
    collect/, emptied before their step runs, and, for a TRD archive, trd/, which the archive is unpacked into
    in place of what is there. The build removed its own input with them (a TRD archive put in trd/, a board
    repository copied into platform/), and the step then failed for want of it."""
    p = ctx.paths
    emptied = [p.root / name for name in STEP_FOLDERS if name != "trd" or (ctx.trd is not None and ctx.trd.archive)]
    given: list[tuple[str, Path]] = []
    if ctx.trd is not None:
        given.append(("--trd (DPU_TRD)", ctx.trd.path))
    if ctx.request.board_repo is not None:
        given.append(("--board-repo (BOARD_REPO)", Path(ctx.request.board_repo).expanduser()))
    for option, path in given:
        for folder in emptied:
            if within(path, folder):  # through a link or a bind mount of the folder too
                raise UsageError(
                    f"{option} {path} is in {folder}, which the build removes whole and makes again: move it out "
                    "of the build folder"
                )


def check_trd_folder(ctx: BuildContext) -> None:
    """UsageError, before anything runs, where a TRD archive is to be unpacked into trd/ and a file (no folder,
    no link) is there: the unpacking failed on it ('Not a directory') once the published set was taken down. A
    TRD folder leaves trd/ as it is, and a link there is replaced (extract_trd)."""
    trd = ctx.paths.root / "trd"
    if ctx.trd is None or not ctx.trd.archive or trd.is_symlink() or not os.path.lexists(trd) or trd.is_dir():
        return
    raise UsageError(
        f"{trd} is {what_is_at(trd)}, and the TRD archive {ctx.trd.path} is unpacked in its place: move it elsewhere"
    )


def _made_by_a_build(paths: BuildPaths) -> bool:
    try:  # a regular file only: a FIFO at gen/params.tcl was waited on for ever
        return paths.params.is_file() and paths.params.read_text(errors="replace").startswith(
            "# Generated by dpupose.hwbuild"
        )
    except OSError:
        return False


def stopped_swap(paths: BuildPaths) -> Path | None:
    """The set a rebuild killed outright (kill -9, a power cut: no clean-up ran) left under a hidden name as it
    replaced previous/: atomic_dir moves the older previous/ aside to `.previous.old-PID-XXXXXXXX` and then
    puts the new folder in place, so a kill between the two renames leaves no previous/ and the kept set there
    (the published set it was to replace stays published). None where previous/ is in place (such a folder
    beside it is the older set the swap was removing) or there is no such folder (fsio.moved_aside: names of
    exactly that form; an earlier version's `.previous.old-PID` is left alone). Of several (never left by one
    swap), the one whose build_info.json is the newest."""
    if os.path.lexists(paths.previous):
        return None
    left = [p for p, _ in moved_aside(paths.previous)]

    def written(folder: Path) -> int:
        try:
            return (folder / "build_info.json").stat().st_mtime_ns
        except OSError:
            return -1

    return max(left, key=lambda p: (written(p), p.name)) if left else None


def _finish_stopped_swap(paths: BuildPaths) -> None:
    """Finish what a rebuild killed while replacing previous/ left, as its swap would have: the kept set from
    its hidden name back to previous/ (stopped_swap), then the older sets (`.previous.old-PID-XXXXXXXX`) and
    the new folder never put in place (`.previous.PID-XXXXXXXX.tmp`, links to the set still published) removed
    (names of exactly those forms: a user's `.previous.2024-backup.tmp` stays).
    Called under the build folder's lock, which every build holds while it swaps: each of these is a dead
    build's, whatever its PID (atomic_dir's own clean-up asks whether the PID still runs, and after a reboot
    an unrelated process can have it: the kept set then stayed hidden for good)."""
    kept = stopped_swap(paths)
    if kept is not None:
        os.replace(kept, paths.previous)
        log.info("put back %s as %s (a rebuild was stopped while replacing it)", kept.name, paths.previous)
    for left, _ in [*moved_aside(paths.previous), *temporaries(paths.previous)]:
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
            if left.exists():
                log.warning("could not remove %s, left by a stopped rebuild: remove it yourself", left)


def _check_previous(paths: BuildPaths) -> None:
    prev = paths.previous
    if not os.path.lexists(prev):
        return
    if prev.is_symlink() or not prev.is_dir():
        raise UsageError(
            f"{prev} is {what_is_at(prev)}, not a folder a build made, and a rebuild keeps the published files "
            "there: move it elsewhere"
        )
    if not prev.stat().st_mode & 0o222 or not os.access(prev, os.W_OK | os.X_OK):
        # Made read-only to keep it, or not ours to write: the swap renames it aside all the same (a rename
        # needs only the build folder writable) and then cannot empty it, leaving it hidden as
        # .previous.old-PID-XXXXXXXX.
        raise UsageError(
            f"{prev} is read-only, and a rebuild replaces previous/ whole: make it writable (chmod u+w {prev}), "
            "or move it elsewhere to keep it"
        )
    try:
        # A build puts only regular files there: a folder under a published name (its files would go with
        # previous/, removed whole), a link or a FIFO was put there by someone else.
        others = sorted(
            n if n not in PUBLISHED else f"{n} ({what_is_at(prev / n)})"
            for n in os.listdir(prev)
            if n not in PUBLISHED or os.path.islink(prev / n) or not os.path.isfile(prev / n)
        )
    except OSError as exc:
        raise UsageError(f"{prev} cannot be read ({exc.strerror}), and a rebuild replaces it: fix or move it") from None
    if others:
        shown = shortlist(others)
        raise UsageError(
            f"{prev} holds {shown}, which no build put there, and a rebuild replaces previous/ whole: move "
            f"{'it' if len(others) == 1 else 'them'} elsewhere"
        )


def run_build(
    ctx: BuildContext, start: str | None = None, stop: str | None = None, force: bool = False
) -> list[StepRun]:
    """Run the selected steps in order, skipping tool steps whose stamp still matches (unless `force`), with
    the build folder locked: a second build into it (a second terminal, `make -j`) would run Vivado on the
    same project and v++ over the same outputs, hours of work each spoiling the other's."""
    from dpupose.fsio import lock_output_folder

    check_build_folder(ctx.paths)
    check_inputs_outside_emptied_folders(ctx)
    check_trd_folder(ctx)
    with lock_output_folder(ctx.paths.root, "dpupose hw build"):  # a refused build leaves no lock file, no folder
        if _made_by_a_build(ctx.paths):
            _finish_stopped_swap(ctx.paths)
            _check_previous(ctx.paths)  # what was put back, too
        return _run_steps(ctx, start, stop, force)


def _run_steps(ctx: BuildContext, start: str | None, stop: str | None, force: bool) -> list[StepRun]:
    runs = []
    selected = select(start, stop)
    if selected[0].name != "generate":
        _generate(ctx)  # cheap and rewrites only what changed: later steps always see current files
    for step in selected:
        missing = [(f, maker) for f, maker in step.requires(ctx) if not f.is_file()]
        if missing:
            f, maker = missing[0]
            raise UsageError(f"step {step.name} needs {f}, which step {maker} makes: run with --from {maker}")
        t0 = time.monotonic()
        if not force and _up_to_date(ctx, step):
            log.info("%s: up to date", step.name)
            runs.append(StepRun(step.name, "up to date", 0.0))
            continue
        if step.name in TOOL_STEPS or (step.name == "collect" and not _collects_the_published_set(ctx)):
            _unpublish(ctx)
        log.info("%s: running", step.name)
        if step.inputs is not None:
            _stamp_path(ctx, step).unlink(missing_ok=True)
        log_before = _log_state(ctx, step)
        try:
            step.run(ctx)
        except BaseException as exc:  # Ctrl-C too: the step did not finish, and `hw status` says so
            _record_failure(ctx, step, exc, log_before)
            raise
        ctx.seconds[step.name] = time.monotonic() - t0
        if step.inputs is not None:
            _write_stamp(ctx, step)
        _failed_path(ctx, step).unlink(missing_ok=True)  # after the stamp: a stop between leaves it built
        runs.append(StepRun(step.name, "ran", ctx.seconds[step.name]))
    return runs
