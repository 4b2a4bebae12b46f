"""`dpupose dpu`: DPU configurations: fingerprint, resources and fit, performance estimate, compare.

Only the standard library is imported here; onnx, scipy and matplotlib are imported by the functions
that need them. Every FPS figure printed is predicted by the performance model, and labelled so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dpupose.commands.argtypes import board_name, config_name, given, output_dir, output_file, positive_int
from dpupose.fsio import json_text

PREDICTED_NOTE = "predicted by the DPU performance model (not measured)"
ESTIMATED_NOTE = (
    "LUT and FF are estimates from PG338's tables (about +-10%); DSP, BRAM36 and URAM follow the IP's formulas"
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dpu", help="DPU configurations: fingerprint, fit, performance, compare")
    p.set_defaults(group_parser=p)
    sub = p.add_subparsers(dest="dpu_command", metavar="SUBCOMMAND")

    s = sub.add_parser("list", help="list the shipped DPU configurations and boards")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("fingerprint", help="print a configuration's fingerprint (0x...) or decode one")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--config",
        type=config_name,
        metavar="NAME|PATH",
        help="shipped configuration name or .toml path",
    )
    g.add_argument("--decode", metavar="0xWORD", help="decode a fingerprint into its fields")
    s.set_defaults(func=cmd_fingerprint)

    s = sub.add_parser("fit", help="resources of a configuration and whether it fits a board (exit 1 if not)")
    _config_and_board(s)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser(
        "estimate",
        help="predicted DPU latency/FPS of an ONNX model (FP32 or QDQ)",
        description="Predicted DPU latency and FPS of an ONNX model (FP32 or QDQ) on one configuration: a shipped "
        "or .toml one (--config), or an ad-hoc one (--arch, with --freq-mhz and --cores); give one of the two.",
    )
    s.add_argument("model", metavar="MODEL.onnx", type=given("an ONNX model"), help="the network to estimate (ONNX)")
    _config_args(s)
    s.add_argument("--per-layer", action="store_true", help="show every layer's compute/memory/overhead time")
    s.add_argument("--json", action="store_true", help="print JSON (latency_ms, fps, ...)")
    s.add_argument("--allow-unknown", action="store_true", help="estimate ops the model does not know conservatively")
    s.add_argument("--ignore-fit", action="store_true", help="estimate even if the configuration does not fit")
    s.set_defaults(func=cmd_estimate)

    s = sub.add_parser(
        "compare",
        help="compare the board's shipped configurations (and your own, --config; with --sweep the grid) for one model",
        description="Compare DPU configurations on a board for one ONNX model: fit, resources, fingerprint and "
        "predicted FPS of every shipped configuration meant for the board, of each configuration given with "
        "--config (a .toml of your own, shown by its path), and with --sweep of the legal grid.",
    )
    s.add_argument(
        "--board",
        type=board_name,
        default="ultra96v2",
        help="board record name (default: ultra96v2)",
    )
    s.add_argument(
        "--model",
        required=True,
        metavar="X.onnx",
        type=given("an ONNX model"),
        help="the ONNX model to predict FPS for",
    )
    s.add_argument(
        "--config",
        type=config_name,
        action="append",
        metavar="NAME|PATH",
        help="also compare this configuration (a .toml path, shown by its path, or a shipped name), on --board; "
        "repeat it for more",
    )
    s.add_argument("--sweep", action="store_true", help="also sweep the legal grid of configurations")
    s.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    s.add_argument("--allow-unknown", action="store_true", help="estimate ops the model does not know conservatively")
    s.add_argument(
        "--plot",
        type=output_file,
        metavar="OUT.png",
        help="write a plot of predicted FPS against DSP use (.png, .svg or .pdf; a file of that name is replaced)",
    )
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("calibrate", help="fit the performance model to the published figures, report errors")
    s.add_argument(
        "--write",
        action="store_true",
        help="write the fitted constants to dpu/perf/constants.toml in hw/ (or in $DPUPOSE_HW_DIR where set)",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("files", help="write dpu_conf.vh, prj_config and arch.json for a configuration")
    _config_and_board(s)
    s.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output folder")
    s.set_defaults(func=cmd_files)


def _config_and_board(s: argparse.ArgumentParser) -> None:
    """fit's and files' --config (required) and --board."""
    s.add_argument(
        "--config",
        type=config_name,
        required=True,
        metavar="NAME|PATH",
        help="shipped configuration name or .toml path",
    )
    s.add_argument(
        "--board",
        type=board_name,
        help="board record name (default: the configuration's board)",
    )


def _config_args(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--config",
        type=config_name,
        metavar="NAME|PATH",
        help="shipped configuration name or .toml path (or --arch)",
    )
    s.add_argument(
        "--arch",
        type=given("an ARCH, B512 ... B4096"),
        help="ad-hoc configuration: ARCH (B512 ... B4096), DPU-PYNQ defaults otherwise",
    )
    s.add_argument("--freq-mhz", type=positive_int, default=None, help="with --arch: 1x DPU clock in MHz (default 200)")
    s.add_argument("--cores", type=positive_int, default=None, help="with --arch: number of DPU cores (default 1)")
    s.add_argument(
        "--board",
        type=board_name,
        help="board record (default: the configuration's board, else ultra96v2)",
    )


def _resolve_config(args: argparse.Namespace) -> Any:
    from dpupose.dpu.config import config_from_arch, load_config
    from dpupose.errors import UsageError

    if bool(args.config) == bool(args.arch):
        raise UsageError("give exactly one of --config NAME|PATH or --arch ARCH (with --freq-mhz, --cores)")
    if args.config:
        if args.freq_mhz is not None or args.cores is not None:
            raise UsageError("--freq-mhz and --cores go with --arch; a --config file sets its own")
        return load_config(args.config)
    from dpupose.dpu.board import load_board

    board = load_board(args.board or "ultra96v2")
    return config_from_arch(
        args.arch,
        args.freq_mhz or 200,
        cores=args.cores or 1,
        board=board.name,
        use_uram=board.resources.uram > 0,
    )


def _board(args: argparse.Namespace, cfg: Any) -> Any:
    from dpupose.dpu.board import load_board

    return load_board(args.board or cfg.board)


def cmd_list(args: argparse.Namespace) -> int:
    from dpupose.dpu.board import list_boards, load_board
    from dpupose.dpu.config import list_configs, load_config
    from dpupose.dpu.fingerprint import fingerprint_hex
    from dpupose.dpu.paths import boards_dir, configs_dir, shown

    # The folders read: the package's hw/, or where $DPUPOSE_HW_DIR names another (said, with its path).
    print(f"DPU configurations ({shown(configs_dir())}):")
    for name in list_configs():
        cfg = load_config(name)
        print(f"  {name:24s} {fingerprint_hex(cfg)}  {cfg.board:10s} {cfg.description}")
    print(f"Boards ({shown(boards_dir())}):")
    for name in list_boards():
        b = load_board(name)
        default = f"  default DPU: {b.default_dpu_config}" if b.default_dpu_config else ""
        print(f"  {name:10s} {b.title} ({b.device}){default}")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from dpupose.dpu import fingerprint as fp
    from dpupose.errors import UsageError

    if args.decode is not None:
        try:
            word = int(args.decode, 0)
        except ValueError:
            raise UsageError(f"--decode: {args.decode!r} is not a number (write it as 0x...)") from None
        fields = fp.decode(word)
        for key, value in vars(fields).items():
            print(f"{key:20s} {value.value if hasattr(value, 'value') else value}")
        return 0
    from dpupose.dpu.config import load_config

    print(fp.fingerprint_hex(load_config(args.config)))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    import math

    from dpupose.dpu.config import load_config
    from dpupose.dpu.resources import ESTIMATED, check_fit, utilization_pct

    cfg = load_config(args.config)
    report = check_fit(cfg, _board(args, cfg))
    if args.json:
        d = {
            "config": report.config,
            "board": report.board,
            "fits": report.fits,
            "limiting": report.limiting,
            "dpu": report.dpu.as_dict(),
            "total": report.total.as_dict(),
            "available": report.available.as_dict(),
            "utilization_pct": utilization_pct(report.utilization),
            "estimated": list(ESTIMATED),
            "reasons": report.reasons,
            "risks": report.risks,
        }
        print(json_text(d, indent=2))
        return 0 if report.fits else 1
    print(report.summary())
    print(f"{'':8s}{'DPU':>10s}{'+platform':>12s}{'available':>12s}{'use':>8s}")
    for k, v in report.utilization.items():
        print(
            f"{k.upper() + ('*' if k in ESTIMATED else ''):8s}{getattr(report.dpu, k):>10,.1f}"
            f"{getattr(report.total, k):>12,.1f}{getattr(report.available, k):>12,.0f}"
            + (f"{'-':>8s}" if math.isinf(v) else f"{100 * v:>7.1f}%")
        )
    print(f"* {ESTIMATED_NOTE}")
    for risk in report.risks:
        print(f"risk: {risk}")
    return 0 if report.fits else 1


def cmd_estimate(args: argparse.Namespace) -> int:
    from dpupose.dpu.perf import estimate
    from dpupose.dpu.resources import check_fit
    from dpupose.errors import ConfigError

    cfg = _resolve_config(args)
    board = _board(args, cfg)
    fit = check_fit(cfg, board)
    if not fit.fits and not args.ignore_fit:
        raise ConfigError(
            f"{cfg.name} does not fit the {board.title}: {'; '.join(fit.reasons)}; "
            "pass --ignore-fit to estimate it anyway"
        )
    est = estimate(args.model, cfg, board, unknown="conservative" if args.allow_unknown else "error")
    for w in est.warnings:
        print(f"dpupose: warning: {w}", file=sys.stderr)
    if args.json:
        d = est.to_dict(per_layer=args.per_layer)
        d["fits"] = fit.fits
        print(json_text(d, indent=2))
        return 0
    print(
        f"{args.model} on {cfg.name} ({cfg.arch.value} x{cfg.cores}, {cfg.clock_mhz} MHz, "
        f"{board.title}), {PREDICTED_NOTE}:"
    )
    run = f" per run of {est.batch} images (the model's fixed batch)" if est.batch > 1 else ""
    print(f"  latency {est.latency_ms:.3f} ms{run}  ->  {est.fps:.1f} FPS single thread (DPU only)")
    print(
        f"  throughput with {cfg.cores} core(s): {est.throughput_fps:.1f} FPS;  "
        f"{est.gops:.3f} GOPs in {len(est.layers)} DPU layers"
    )
    kinds = ", ".join(f"{k} {v:.3f} ms" for k, v in sorted(est.breakdown().items(), key=lambda kv: -kv[1]))
    print(f"  time by layer kind: {kinds}")
    if est.excluded:
        ops = sorted({op for _, op, _ in est.excluded})
        print(f"  not estimated ({len(est.excluded)} ops, not DPU ops or after one): {', '.join(ops)}")
    if args.per_layer:
        print(
            f"\n  {'layer':40s} {'op':13s} {'kind':8s} {'output':18s} {'MMAC':>7s} {'compute':>8s} "
            f"{'memory':>8s} {'total':>8s}  bound"
        )
        for r in est.layers:
            shape = "x".join(str(x) for x in r.output[1:])
            print(
                f"  {_tail(r.name, 40):40s} {r.op:13s} {r.kind:8s} {shape:18s} {r.macs / 1e6:7.2f} "
                f"{r.compute_ms:8.4f} {r.memory_ms:8.4f} {r.time_ms:8.4f}  {r.bound}"
            )
        print("  (times in ms)")
        if est.excluded:
            print("\n  not estimated (they run on the CPU):")
            for name, op, reason in est.excluded:
                print(f"  {_tail(name, 40):40s} {op:13s} {reason}")
    return 0


def _tail(name: str, width: int) -> str:
    """The end of a long node name (the distinctive part), marked as cut."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def cmd_compare(args: argparse.Namespace) -> int:
    from dpupose.dpu.board import load_board
    from dpupose.dpu.compare import compare, format_table, given_configs, plot, plot_format

    if args.plot:
        plot_format(args.plot)  # before the comparison's work
    board = load_board(args.board)
    given = given_configs(args.config or [])  # a path that is not there, or no configuration, before the model's work
    for cfg, path in given:
        if cfg.board != board.name:
            print(
                f"dpupose: warning: {path or cfg.name} is meant for {cfg.board}; it is compared on {board.name} "
                f"(--board {cfg.board} compares it on its own board)",
                file=sys.stderr,
            )
    rows = compare(
        args.model,
        board,
        sweep=args.sweep,
        unknown="conservative" if args.allow_unknown else "error",
        given=args.config or [],
    )
    if not rows:
        from dpupose.errors import ConfigError

        raise ConfigError(
            f"no shipped configuration is meant for {board.name}; compare the grid with --sweep "
            f"(make compare BOARD={board.name} COMPARE_ARGS=--sweep)"
        )
    if args.json:
        print(json_text([r.to_dict() for r in rows], indent=2))
    else:
        print(f"{board.title} ({board.device}), model {args.model}; FPS {PREDICTED_NOTE}, single thread, DPU only.")
        print(f"Resources include {board.platform_overhead.lut:,.0f} LUT reserved for the platform; {ESTIMATED_NOTE}.")
        print(format_table(rows))
    unknown = sorted({op for r in rows for op in r.unknown_ops})
    if unknown:
        print(
            f"dpupose: warning: op(s) the model does not know, estimated conservatively: {', '.join(unknown)}",
            file=sys.stderr,
        )
    for warning in dict.fromkeys(w for r in rows for w in r.too_wide):  # one per channel limit (per ICP)
        print(f"dpupose: warning: {warning}", file=sys.stderr)
    left_out = sorted({op for r in rows for op in r.not_estimated})
    if left_out:
        print(
            f"note: not estimated (not DPU ops, or after one; they run on the CPU): {', '.join(left_out)}; "
            "the FPS is for the DPU part only (`dpupose split` predicts the whole frame)",
            file=sys.stderr if args.json else sys.stdout,
        )
    if args.plot:  # after the table: a plot that cannot be written does not take the table with it
        name = args.model.rsplit("/", 1)[-1]
        title = f"{name} on the {board.title} ({board.device})\nFPS {PREDICTED_NOTE}"
        sys.stdout.flush()
        plot(rows, args.plot, title, board.resources.dsp)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from dpupose.dpu.calibrate import calibrate, write_constants

    cal = calibrate()
    if args.json:
        d = {
            "constants": vars(cal.constants),
            "rms_log_error": cal.rms_log_error,
            "rows": cal.report,
            "validation": cal.validation,
        }
        print(json_text(d, indent=2))
    else:
        c = cal.constants
        print(
            f"fitted: layer_overhead_cycles = {c.layer_overhead_cycles}, "
            f"ddr_efficiency = {c.ddr_efficiency}, "
            f"host_ms = {c.host_ms};  rms log error {cal.rms_log_error:.3f}"
        )
        print(
            f"{'model':13s} {'board':7s} {'cores':>5s} {'MHz':>4s}  "
            f"{'1-thread pub':>12s} {'pred':>7s} {'err':>6s}"
            f"  {'multi pub':>9s} {'pred':>7s} {'err':>6s}  source"
        )
        for r in cal.report:
            print(
                f"{r['model']:13s} {r['board']:7s} {r['cores']:5d} {r['clock_mhz']:4d}  "
                f"{r['single_published']:12.1f} {r['single_predicted']:7.1f} {r['single_err_pct']:5.1f}%"
                f"  {r['multi_published']:9.1f} {r['multi_predicted']:7.1f} {r['multi_err_pct']:5.1f}%  "
                f"{r['source']}"
            )
        if cal.validation:
            from dpupose.dpu.calibrate import validation_csv
            from dpupose.dpu.paths import shown

            print(f"validation (measured figures, not fitted: {shown(validation_csv())}):")
            print(
                f"{'model':13s} {'board':9s} {'arch':5s} {'cores':>5s} {'MHz':>4s} {'figure':12s}  "
                f"{'measured':>8s} {'pred':>7s} {'err':>6s}  measured by"
            )
            for r in cal.validation:
                print(
                    f"{r['model']:13s} {r['board']:9s} {r['arch']:5s} {r['cores']:5d} {r['clock_mhz']:4d} "
                    f"{r['figure']:12s}  {r['measured']:8.2f} {r['predicted']:7.1f} {r['err_pct']:5.1f}%  "
                    f"{r['measured_by']}"
                )
    if args.write:
        changed = write_constants(cal)
        print("constants written" if changed else "constants unchanged", file=sys.stderr)
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dpupose.dpu.config import load_config
    from dpupose.dpu.resources import check_fit
    from dpupose.dpu.writers import arch_json, dpu_conf_vh, prj_config, write_generated_set
    from dpupose.errors import ConfigError

    cfg = load_config(args.config)
    board = _board(args, cfg)
    fit = check_fit(cfg, board)
    if not fit.fits:
        raise ConfigError(f"{cfg.name} does not fit the {board.title}: {'; '.join(fit.reasons)}")
    # Build every text first, so that a refusal (e.g. a clock the platform lacks) writes nothing.
    texts = {
        "dpu_conf.vh": dpu_conf_vh(cfg),
        "prj_config": prj_config(cfg, board),
        "arch.json": arch_json(cfg),
    }
    out = Path(args.out)
    written = write_generated_set({out / name: text for name, text in texts.items()})  # all or none
    for path, changed in written.items():
        print(f"{path}: {'written' if changed else 'unchanged'}")
    for risk in fit.risks:  # as `dpu fit` says them; `hw build` refuses a power risk without --i-know
        print(f"dpupose: warning: {risk}", file=sys.stderr)
    return 0
