"""`dpupose hw`: build dpu.bit / dpu.hwh / dpu.xclbin / arch.json for a DPU configuration, or check it can be.

    dpupose hw check --config NAME [--trd DPUCZDX8G.tar.gz] [--board-repo BDF] [--i-know] [--json]
    dpupose hw build --config NAME [--trd ...] [--board-repo ...] [--from STEP] [--to STEP] [--force]
    dpupose hw commands --config NAME ...    the exact tool command lines the build runs
    dpupose hw status --config NAME          which steps are up to date or failed, what is published and kept

--trd and --board-repo default to $DPU_TRD and $BOARD_REPO. Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from dpupose.commands.argtypes import board_name, config_name, given, output_dir
from dpupose.fsio import loads_json, what_is_at

STEP_NAMES = ("generate", "platform", "kernel", "link", "collect", "report")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("hw", help="hardware build: Vivado platform + DPU kernel + v++ link (or check)")
    p.set_defaults(group_parser=p)
    sub = p.add_subparsers(dest="hw_command", metavar="SUBCOMMAND")

    s = sub.add_parser(
        "check",
        help="check everything that can be checked before the tool run (only the tools' version queries run; exit "
        "1 if a build would stop)",
    )
    _common(s)
    s.add_argument("--json", action="store_true", help="print the findings as JSON")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("build", help="run the build steps: " + " -> ".join(STEP_NAMES))
    _common(s)
    s.add_argument("--from", dest="start", choices=STEP_NAMES, help="first step to run (default generate)")
    s.add_argument("--to", dest="stop", choices=STEP_NAMES, help="last step to run (default report)")
    s.add_argument("--force", action="store_true", help="run the selected steps even if they are up to date")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("commands", help="print the vivado / v++ command lines of the build (runs nothing)")
    _common(s)
    s.set_defaults(func=cmd_commands)

    s = sub.add_parser(
        "status",
        help="show which build steps are up to date (or failed, and when), what is published, and the set "
        "published before the last rebuild, kept in previous/ (exit 1 if a published file is missing, unreadable "
        "or changed since, or the set was built from another configuration, 2 if the configuration cannot be "
        "read)",
    )
    _common(s)
    s.set_defaults(func=cmd_status)


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--config",
        type=config_name,
        required=True,
        metavar="NAME|PATH",
        help="DPU configuration: shipped name (hw/dpu/configs) or .toml path",
    )
    s.add_argument(
        "--board",
        type=board_name,
        help="board record (default: the configuration's board)",
    )
    s.add_argument(
        "--trd",
        type=given("the DPU TRD archive or its folder"),
        default=os.environ.get("DPU_TRD") or None,
        metavar="PATH",
        help="Vitis AI 2.5 DPU TRD: DPUCZDX8G.tar.gz or its folder (default $DPU_TRD)",
    )
    s.add_argument(
        "--board-repo",
        type=given("the board files folder"),
        default=os.environ.get("BOARD_REPO") or None,
        metavar="DIR",
        help="board files repository, e.g. a checkout of Avnet's bdf (default $BOARD_REPO)",
    )
    s.add_argument("--out", type=output_dir, metavar="DIR", help="build folder (default build/hw/<config>)")
    s.add_argument(
        "--i-know",
        action="store_true",
        help="accept a DPU clock above the board's known-safe limit (the board may reset at that clock)",
    )


def _request(args: argparse.Namespace) -> Any:
    from dpupose.hwbuild.check import BuildRequest

    return BuildRequest(args.config, args.board, args.trd, args.board_repo, args.i_know, args.out)


def _print_findings(findings: list[Any], stream: Any = None) -> None:
    stream = stream or sys.stdout
    width = max((len(f.topic) for f in findings), default=0)
    for f in findings:
        print(f"  {f.level:5s} {f.topic:{width}s}  {f.message}", file=stream)


def cmd_check(args: argparse.Namespace) -> int:
    from dpupose.hwbuild.check import preflight

    pre = preflight(_request(args), set(STEP_NAMES))
    if args.json:
        print(pre.to_json())
        return 1 if pre.errors else 0
    print(f"hardware build check for {args.config}:")
    _print_findings(pre.findings)
    n = len(pre.errors)
    if n:
        problems = f"{n} problem{'s' if n > 1 else ''}"
        print(f"{problems}: a build (`dpupose hw build`, `make hw`) would stop before starting Vivado.")
        return 1
    print(
        "ready: the build (`dpupose hw build`, `make hw`) can run "
        "(Vivado platform ~10-20 min, kernel a few min, v++ link 1-2 h)."
    )
    return 0


def _preflight_or_stop(args: argparse.Namespace, steps: list[str]) -> Any:
    from dpupose.hwbuild.check import PreflightFailed, preflight

    pre = preflight(_request(args), set(steps))
    warnings = [f for f in pre.findings if f.level == "warn"]
    if warnings:
        _print_findings(warnings, sys.stderr)
    if pre.errors:
        reasons = "\n".join(f"  {f.topic}: {f.message}" for f in pre.errors)
        raise PreflightFailed(f"the build did not start (nothing was run or written):\n{reasons}")
    return pre


def cmd_build(args: argparse.Namespace) -> int:
    from dpupose.hwbuild.flow import BuildContext, published_set, run_build, select
    from dpupose.hwbuild.layout import DELIVERABLES, BuildPaths

    steps = [s.name for s in select(args.start, args.stop)]
    pre = _preflight_or_stop(args, steps)
    paths = BuildPaths.for_config(pre.cfg.name, args.out)
    ctx = BuildContext.from_preflight(pre, paths, _request(args))
    try:
        runs = run_build(ctx, args.start, args.stop, force=args.force)
    except BaseException:
        # A step that failed hours in, or Ctrl-C: the set it took down was kept in previous/ (run_build's
        # _unpublish); say where before the error, which names only what failed.
        if ctx.unpublished and published_set(paths.root) is None and published_set(paths.previous) is not None:
            print(
                f"dpupose: nothing is published now; the last published set is kept in {paths.previous}",
                file=sys.stderr,
            )
        raise
    for run in runs:
        took = f" ({run.seconds / 60:.1f} min)" if run.seconds >= 60 else ""
        print(f"{run.step:9s} {run.status}{took}")
    published = [paths.deliverable(n) for n in DELIVERABLES if paths.deliverable(n).is_file()]
    if published and (args.stop in (None, "report")):
        print(f"built {', '.join(p.name for p in published)} in {paths.root}")
        if published_set(paths.previous) is not None:
            print(f"the set published before it is kept in {paths.previous} (until the next rebuild replaces it)")
    return 0


def _same_build(args: argparse.Namespace) -> str:
    """--config and --out as the user gave them, quoted for the shell: the hints' commands name the same
    configuration (a .toml path stays a path) and build folder, and paste as they are."""
    out = f" --out {shlex.quote(str(args.out))}" if args.out else ""
    return f"--config {shlex.quote(args.config)}{out}"


def _shell_word(word: str, variables: tuple[str, ...]) -> str:
    """shlex.quote, except that the named $VARIABLES stay outside the quotes, so the shell expands them."""
    for var in variables:
        pre, sep, post = word.partition(var)
        if sep:
            return "".join((shlex.quote(pre) if pre else "", f'"{var}"', _shell_word(post, variables) if post else ""))
    return shlex.quote(word)


def cmd_commands(args: argparse.Namespace) -> int:
    from dpupose.hwbuild.check import config_and_board
    from dpupose.hwbuild.commands import kernel_argv, link_argv, platform_argv
    from dpupose.hwbuild.inputs import POSTLINK_TCL, inspect_trd
    from dpupose.hwbuild.layout import BuildPaths

    cfg, _ = config_and_board(args.config, args.board)  # --board was not looked at: an unknown one printed lines
    paths = BuildPaths.for_config(cfg.name, args.out)
    trd, postlink = Path("$DPU_TRD"), True
    if args.trd:
        info = inspect_trd(args.trd)
        trd = paths.trd_dir if info.archive else (info.path / info.prefix).resolve()
        postlink = info.has_postlink
        if info.archive and not paths.trd_dir.is_dir():
            print(
                f"# {args.trd} is an archive: these lines read it unpacked in {paths.trd_dir}, which the kernel "
                "step of `dpupose hw build` makes (or pass --trd the unpacked folder)"
            )
    else:
        print(f"# DPU_TRD not given: the link step's --xp hook applies only if $DPU_TRD has {POSTLINK_TCL}")
    if not args.board_repo:
        print("# BOARD_REPO not given: set it (export BOARD_REPO=...) before running these lines")
    if not paths.params.is_file():
        print(
            f"# {paths.gen} does not exist yet: make the files these lines read with "
            f"`dpupose hw build {_same_build(args)} --to generate`"
        )
    repo = Path(args.board_repo).expanduser().resolve() if args.board_repo else Path("$BOARD_REPO")
    for step, where, argv in (
        ("platform", paths.platform_dir, platform_argv(paths, repo)),
        ("kernel", paths.kernel_dir, kernel_argv(paths, trd)),
        ("link", paths.root, link_argv(paths, trd, postlink=postlink)),
    ):  # each in the folder `dpupose hw build` runs it in (the tools write their projects there)
        command = " ".join(_shell_word(w, ("$DPU_TRD", "$BOARD_REPO")) for w in argv)
        print(f"# {step}: run in {where}\n{command}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from dpupose.hwbuild.check import preflight
    from dpupose.hwbuild.flow import BuildContext, step_status
    from dpupose.hwbuild.layout import BuildPaths

    pre = preflight(_request(args), set(STEP_NAMES))
    if pre.cfg is None:  # a configuration or board that cannot be read: the command could not run (2), no check
        from dpupose.errors import ConfigError

        raise ConfigError("; ".join(f.message for f in pre.errors if f.topic == "config"))
    # A .toml of one's own named like a shipped configuration shares its build folder: said as check and build
    # say it (the status read is of whichever of the two built there last).
    shared = [f for f in pre.findings if f.level == "warn" and f.topic == "out"]
    if shared:
        _print_findings(shared, sys.stderr)
    paths = BuildPaths.for_config(pre.cfg.name, args.out)
    ctx = BuildContext.from_preflight(pre, paths, _request(args))
    for name, state in step_status(ctx).items():
        print(f"{name:9s} {state}")
    rc = _print_published(args, paths, pre.cfg)
    kept = _previous_line(paths)
    if kept:
        print(kept)
    return rc


def _previous_line(paths: Any) -> str | None:
    """What previous/ holds: the set published before the last rebuild (a tool step or collect re-run), which
    a failed rebuild leaves as the one set that worked, or why it is not one build's complete set (a file
    missing, or no longer the one its build_info.json records). Where a rebuild was killed while replacing
    previous/ (kill -9, a power cut), the set it left under a hidden name, which the next build puts back.
    None where there is neither."""
    from dpupose.hwbuild.flow import set_problems, stopped_swap
    from dpupose.hwbuild.layout import DELIVERABLES

    where, note, stopped = paths.previous, "published before the last rebuild", ""
    if where.is_symlink() or (where.exists() and not where.is_dir()):
        # Not what a build made (it refuses to run so): the set a link leads to is not one a rebuild kept.
        return (
            f"previous: {where} is {what_is_at(where)}, not a folder a build made; "
            "a build refuses to run until it is moved elsewhere"
        )
    if not where.exists():
        hidden = stopped_swap(paths)
        if hidden is None:
            return None
        where = hidden
        stopped = (
            "the last rebuild was stopped while replacing previous/ and left it here; the next `dpupose hw "
            "build` puts it back as previous/"
        )
        note = f"{note}; {stopped}"
    info, problems = set_problems(where)
    if info is None or problems:
        return f"previous: {where} is not a complete set: {'; '.join(problems)}" + (f" ({stopped})" if stopped else "")
    facts = [f"fingerprint {info['fingerprint']}"] if isinstance(info.get("fingerprint"), str) else []
    timing = info.get("timing")
    if isinstance(timing, dict) and isinstance(timing.get("wns_ns"), (int, float)):
        facts.append(f"WNS {timing['wns_ns']} ns")
    more = f"; {', '.join(facts)}" if facts else ""
    return f"previous: {', '.join(DELIVERABLES)} in {where} ({note}{more})"


def _other_configuration(info: Any, cfg: Any) -> str | None:
    """How the configuration a published set's build_info.json records differs from `cfg` (--config's): its
    name and the values that differ, or its fingerprint where it records no configuration; None where it is
    the same (or build_info.json records neither)."""
    from dpupose.dpu.fingerprint import fingerprint_hex
    from dpupose.fsio import json_text

    recorded = info.get("configuration")
    if isinstance(recorded, dict):
        given = loads_json(json_text(cfg.to_dict()))  # as build_info.json holds it (lists, enum values)
        keys = sorted(k for k in recorded.keys() | given.keys() if recorded.get(k) != given.get(k))
        if not keys:
            return None
        shown = [f"{k} {json_text(recorded.get(k))} there, {json_text(given.get(k))} in yours" for k in keys[:4]]
        more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
        what = "; ".join(shown) + more
    else:
        mine = fingerprint_hex(cfg)
        if not isinstance(info.get("fingerprint"), str) or info["fingerprint"] == mine:
            return None
        what = f"fingerprint {info['fingerprint']} there, {mine} in yours"
    name = info.get("config") if isinstance(info.get("config"), str) else "?"
    return f"configuration {name} ({what})"


def _print_published(args: argparse.Namespace, paths: Any, cfg: Any) -> int:
    from dpupose.hwbuild.flow import artifact_change, os_error_words
    from dpupose.hwbuild.layout import DELIVERABLES

    published = [n for n in DELIVERABLES if paths.deliverable(n).is_file()]
    if not paths.build_info.is_file():
        if not published:
            print("published: nothing")
            return 0
        print(
            f"published: {', '.join(published)} without build_info.json (a report step that did not finish); "
            f"write it with `dpupose hw build {_same_build(args)} --from report`"
        )
        return 1
    try:
        info = loads_json(paths.build_info.read_text())
        wns = info["timing"]["wns_ns"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"published: unknown ({paths.build_info} is unreadable: {type(exc).__name__} {exc}; "
            f"rebuild it with `dpupose hw build {_same_build(args)} --from report`)"
        )
        return 1
    missing = [n for n in DELIVERABLES if n not in published]
    if missing:
        have = ", ".join(published) or "nothing"
        them = "it" if len(missing) == 1 else "them"
        print(
            f"published: {have}; {', '.join(missing)} missing "
            f"(rebuild {them} with `dpupose hw build {_same_build(args)} --from collect`)"
        )
        return 1
    # build_info.json records each file's size and sha256 as published (an older one the size only): one cut
    # short, edited or replaced since was reported as published, timing met.
    recorded = info.get("artifacts") if isinstance(info, dict) else None
    changed, unread = [], []
    for name in DELIVERABLES:
        try:
            change = artifact_change(
                paths.deliverable(name), recorded.get(name) if isinstance(recorded, dict) else None
            )
        except OSError as exc:  # EIO, a folder put where the file was since it was listed: no traceback
            unread.append(f"{paths.deliverable(name)} ({os_error_words(exc)})")
            continue
        if change:
            changed.append(f"{name} ({change})")
    problems = [f"{', '.join(changed)} changed since the build published it"] if changed else []
    if unread:  # not known to be the file the build published
        problems.append(f"{', '.join(unread)} cannot be read")
    if problems:
        print(
            f"published: {', '.join(DELIVERABLES)}; {'; '.join(problems)} (publish them again with "
            f"`dpupose hw build {_same_build(args)} --from collect`)"
        )
        return 1
    other = _other_configuration(info, cfg) if isinstance(info, dict) else None
    if other is not None:
        # A .toml of one's own named like a shipped configuration (or the shipped one) built there last: the
        # set is that one's, not what --config would publish.
        print(
            f"published: {', '.join(DELIVERABLES)} (timing met, WNS {wns} ns), but built from another {other}, "
            f"not from {args.config}: rebuild with `dpupose hw build {_same_build(args)}` for yours (or give --out "
            "another folder to keep both)"
        )
        return 1
    print(f"published: {', '.join(DELIVERABLES)} (timing met, WNS {wns} ns)")
    return 0
