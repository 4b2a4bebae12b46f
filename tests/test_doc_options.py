"""The defaults the docs state for command-line options are the parser's.

The docs state an option's default in one written form, `default` followed by the value in backticks:

- in an option table (`| option | meaning |`), the row of `--opt ...` holds `(default `VALUE`` in its
  meaning cell;
- in prose, "`--opt ARG` (default `VALUE`" with the option in backticks right before it.

Which command a claim is about is given by the doc's `##` section (SECTIONS below); a claim in a section not
listed there fails, so that a new one is checked rather than skipped. Every option that has a default of its
own (not None, not a flag) and a row in an option table must state it there. The parser's help strings say
`(default N)` too; those are compared the same way.

`make help` gives a verb's variables as VAR=value; those are compared with the Makefile's `VAR ?= value`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from dpupose.cli import build_parser
from dpupose.commands import deploy_check
from dpupose.dpu.board import default_config_name

ROOT = Path(__file__).resolve().parents[1]

# (doc, `##` heading) -> the subcommand its option claims are about.
SECTIONS = {
    ("docs/runtime.md", "Options"): "run",
    ("docs/benchmarks.md", "Reproduce"): "bench",
    ("docs/split.md", "Splitting a model between the DPU and the CPU (`dpupose split`)"): "split",
    ("docs/training.md", "Data"): "data synth",
    ("docs/training.md", "Training"): "train",
    ("docs/training.md", "Evaluation"): "eval",
    ("docs/quantization.md", "`dpupose quantize`"): "quantize",
    ("docs/quantization.md", "`dpupose deploy-check`"): "deploy-check",
    ("docs/sdcard-and-deploy.md", "Deploy"): "deploy",
}

# Options whose parser default is None because the code settles it when it runs, with what it settles on.
RESOLVED = {
    ("bench", "--config"): default_config_name("ultra96v2"),
    ("split", "--config"): default_config_name("ultra96v2"),
    ("deploy-check", "--tolerance"): 0,  # with the default --against torch (1 with ort: quant.compare)
    ("deploy-check", "--num"): deploy_check.DEFAULT_NUM,  # None in the parser: given or not, said in a note
    ("deploy-check", "--calib-data"): deploy_check.DEFAULT_CALIB_DATA,
}

CLAIM = re.compile(r"\(default `([^`]+)`")
PROSE = re.compile(r"`(--[a-z][a-z0-9-]*)(?: [^`]*)?`\s+\(default `([^`]+)`")
HELP = re.compile(r"(?:\(|, )default:? ([\w./-]+)")


def parsers() -> dict[str, argparse.ArgumentParser]:
    """'run', 'dpu estimate', ... -> its parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[" ".join([*path, name])] = sub
                    walk(sub, [*path, name])

    walk(build_parser(), [])
    return found


def option(parser: argparse.ArgumentParser, name: str) -> argparse.Action:
    action = parser._option_string_actions.get(name)
    assert action is not None, f"no option {name}"
    return action


def sections(text: str) -> dict[str, str]:
    """`##` heading -> its text up to the next `##` or `#` heading (### subsections included), outside code."""
    out: dict[str, list[str]] = {}
    current = ""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", line):
            current = line.lstrip("#").strip()
            out.setdefault(current, [])
            continue
        out.setdefault(current, []).append(line)
    return {heading: "\n".join(lines) for heading, lines in out.items()}


def claims(text: str) -> list[tuple[str, str | None, str]]:
    """(option, stated default or None, the line) for every option table row and every prose claim."""
    found = []
    table = False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            table = False
            continue
        if cells[:2] == ["option", "meaning"]:
            table = True
            continue
        if table and re.match(r"`--[a-z]", cells[0]):
            name = re.match(r"`(--[a-z][a-z0-9-]*)", cells[0]).group(1)
            stated = CLAIM.search(line)
            found.append((name, stated.group(1) if stated else None, line))
    for match in PROSE.finditer(text):
        found.append((match.group(1), match.group(2), match.group(0)))
    return found


def same(stated: str, default: object) -> bool:
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(stated) == float(default)
        except ValueError:
            return False
    return stated == str(default)


def doc_claims() -> list[tuple[str, str, str, str | None, str]]:
    """(doc, command, option, stated default, line) of every claim in the docs."""
    out = []
    for doc in ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]:
        for heading, body in sections((ROOT / doc).read_text(encoding="utf-8")).items():
            command = SECTIONS.get((doc, heading))
            for name, stated, line in claims(body):
                if command is None:
                    assert stated is None, (
                        f"{doc}, section {heading!r}: {line.strip()!r} states a default, but the test does not "
                        "know which command the section is about: add it to SECTIONS"
                    )
                    continue
                out.append((doc, command, name, stated, line.strip()))
    return out


def test_sections_exist():
    for doc, heading in SECTIONS:
        assert heading in sections((ROOT / doc).read_text(encoding="utf-8")), f"{doc} has no section {heading!r}"


def test_doc_defaults_are_the_parsers():
    commands = parsers()
    checked = 0
    for doc, command, name, stated, line in doc_claims():
        action = option(commands[command], name)
        default = RESOLVED.get((command, name), action.default)
        if stated is None:
            # A table row of an option with a default of its own must say what it is.
            assert default is None or isinstance(default, bool), (
                f"{doc}: the row of `dpupose {command} {name}` does not state its default ({default!r}) as "
                f"(default `{default}`): {line!r}"
            )
            continue
        assert default is not None, (
            f"{doc}: `dpupose {command} {name}` is said to default to {stated!r}, but its parser default is None "
            f"(settled when it runs): give what it settles on in RESOLVED, or drop the claim: {line!r}"
        )
        assert same(stated, default), (
            f"{doc}: `dpupose {command} {name}` is said to default to {stated!r}, but the parser's default is "
            f"{default!r}: {line!r}"
        )
        checked += 1
    assert checked >= 30  # the claims are found at all


def test_resolved_defaults_are_none_in_the_parser():
    """RESOLVED is for options the parser leaves to the code; one that gets a parser default is compared as it."""
    commands = parsers()
    for (command, name), _value in RESOLVED.items():
        assert option(commands[command], name).default is None, f"dpupose {command} {name}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("| `--num N` | images (default `2`) |", [("--num", "2")]),
        ("| `--show` | a window |", [("--show", None)]),
        ("the `--lr X` (default `0.001`, at most 1) rate", [("--lr", "0.001")]),
        ("`--lr`, default 0.001", []),  # not the written form: not a claim
    ],
)
def test_claim_forms(text, expected):
    table = "| option | meaning |\n|---|---|\n" + text if text.startswith("|") else text
    assert [(n, s) for n, s, _ in claims(table)] == expected


def test_help_defaults_are_the_parsers():
    """`(default N)` in an option's help is its default, for options that have one of their own."""
    checked = 0
    for command, parser in parsers().items():
        for action in parser._actions:
            if not action.help or action.default is None or isinstance(action.default, bool):
                continue
            for stated in HELP.findall(action.help):
                if stated in ("the", "a", "an"):
                    continue
                assert same(stated, action.default), (
                    f"dpupose {command} {'/'.join(action.option_strings)}: help says default {stated!r}, the "
                    f"parser's default is {action.default!r}"
                )
                checked += 1
    assert checked >= 30


# make help's `VAR=value` are the variable's default, except these, which show the kind of value to give.
MAKE_PLACEHOLDERS = {"MODEL", "TORCH_INDEX"}


def test_make_help_defaults_are_the_makefiles():
    """`make help` writes a verb's variables as VAR=value, the default first where it lists choices
    (RUN_BACKEND=emulate|cpu|vart): each is the Makefile's `VAR ?= value` where that is not empty."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    defaults = dict(re.findall(r"^([A-Z][A-Z0-9_]*) \?= *(\S*)\s*$", makefile, re.M))
    helps = " ".join(re.findall(r"^[a-z][a-z-]*:.*## (.*)$", makefile, re.M))
    checked = 0
    for name, value in re.findall(r"\b([A-Z][A-Z0-9_]*)=([^\s\])]+)", helps):
        if not defaults.get(name) or name in MAKE_PLACEHOLDERS:
            continue
        assert value.split("|")[0] == defaults[name], (
            f"make help gives {name}={value}, but the Makefile's default is {name} ?= {defaults[name]}"
        )
        checked += 1
    assert checked >= 6
