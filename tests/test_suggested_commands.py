"""The command lines dpupose's messages, help and docs tell a user to run are ones the parser and the Makefile
take: `dpupose SUB [ACTION]` exists, each --flag is one of that command's options and a value written after
an option with choices is one of them; `make VERB VAR=...` names a verb `make help` lists and a variable the
Makefile reads. A message naming a renamed option sends the user to a second error instead of the fix."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
from pathlib import Path

from dpupose.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sw" / "dpupose"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "models").glob("*/README.md"))]

# Options of other programs that dpupose's messages and comments name (outside a `dpupose ...` line).
OTHER_TOOLS = {
    "--delete",  # rsync
    "--check", "--quiet",  # sha256sum
    "--no-deps", "--no-build-isolation",  # pip
    "--platform", "--save-temps", "--temp_dir", "--log_dir", "--report_dir", "--xp",  # v++
    "--nproc_per_node",  # torchrun
    "--num-images",  # python -m dpupose.demo
}  # fmt: skip


def source_texts() -> list[tuple[str, str]]:
    """("file:line", text) for every string literal of the package; an f-string's fields read as {}."""
    out = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            else:
                continue
            out.append((f"{path.relative_to(ROOT)}:{node.lineno}", text))
    return out


def doc_texts() -> list[tuple[str, str]]:
    """("file:line", line) for the docs' lines, a shell line continued with a backslash read as one."""
    out = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
        out += [(f"{path.relative_to(ROOT)}:{n}", line) for n, line in enumerate(lines, 1)]
    return out


def _parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subs[0].choices) if subs else {}


# A command line ends at a backtick, a quote, a semicolon, a bracket closing what it did not open, or a clause
# after it (", " ". " ": " " (" " -> " " or "): what follows is prose or another command.
_END = re.compile(r"\n|`|\"|'|;|, |\. |\.$|: | \(| -> | or |\)$")


def command_words(text: str) -> list[list[str]]:
    """Each `dpupose ...` line in `text` as its words ('[', ']' and '|' between them dropped)."""
    out = []
    for match in re.finditer(r"(?<![\w./-])dpupose (?=[a-z])", text):
        rest = text[match.end() :]
        end = _END.search(rest)
        line = rest[: end.start()] if end else rest
        out.append(["dpupose", *[w for w in re.split(r"[\s\[\]|]+", line) if w]])
    return out


def problems_of(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What in one `dpupose ...` line the parser would refuse: an unknown command, action, option or choice.
    Words that are no command name (prose: 'dpupose version', 'dpupose wheel') are not a command line."""
    commands = _parsers(parser)
    if words[1] not in commands:
        return []
    prog, p, i = f"dpupose {words[1]}", commands[words[1]], 2
    actions = _parsers(p)
    if actions and i < len(words) and re.fullmatch(r"[a-z][a-z-]*", words[i]):
        if words[i] not in actions:
            return [f"{prog} has no action {words[i]!r} (it has {', '.join(actions)})"]
        prog, p, i = f"{prog} {words[i]}", actions[words[i]], i + 1
    options = p._option_string_actions
    found = []
    for j, word in enumerate(words[i:], i):
        if not word.startswith("--") or word == "--":
            continue
        flag, _, value = word.rstrip(".,)").partition("=")
        if flag not in options:
            found.append(f"{prog} has no option {flag}")
            continue
        choices = options[flag].choices
        if not value and j + 1 < len(words):
            value = words[j + 1]
        value = value.rstrip(".,)")
        # A literal value (not a placeholder: NAME, <x>, {}, ...) must be one of the choices.
        literal = re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", value)
        if choices and literal and value not in choices:
            found.append(f"{prog} {flag} takes {', '.join(map(str, choices))}, not {value!r}")
    return found


def all_options(parser: argparse.ArgumentParser) -> set[str]:
    found = set(parser._option_string_actions)
    for sub in _parsers(parser).values():
        found |= all_options(sub)
    return found


def test_every_dpupose_line_in_the_messages_and_docs_is_one_the_parser_takes():
    parser = build_parser()
    wrong = [
        f"{where}: {' '.join(words)}: {problem}"
        for where, text in source_texts() + doc_texts()
        for words in command_words(text)
        for problem in problems_of(words, parser)
    ]
    assert wrong == []


def test_every_option_the_messages_name_is_an_option_of_dpupose():
    """An option named on its own ('pass --overlay', 'or start a new --out') is one of some dpupose command's
    or of the other programs the messages speak of: a misspelt or renamed one is no option at all."""
    parser = build_parser()
    everywhere = all_options(parser) | OTHER_TOOLS
    wrong = []
    for where, text in source_texts():
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", text):
            if flag not in everywhere:
                wrong.append(f"{where}: {flag} is no option of dpupose (nor of {', '.join(sorted(OTHER_TOOLS))})")
    assert wrong == []


def _make_help() -> str:
    return subprocess.run(["make", "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True).stdout


def _make_verbs() -> set[str]:
    """The verbs `make help` lists."""
    return set(re.findall(r"^  make (\S+)\s", _make_help(), flags=re.M))


def _makefile_echoes() -> list[str]:
    """What the Makefile's recipes say (their echo lines: usage and what to give)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return re.findall(r'echo "([^"]*)"', text)


def _make_variables() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"\$\((?:call \w+,)?([A-Z][A-Z0-9_]*)\)", text)) | set(
        re.findall(r"^([A-Z][A-Z0-9_]*) *[:?+]?=", text, flags=re.M)
    )


def test_every_make_line_in_the_messages_and_docs_names_a_listed_verb_and_a_makefile_variable():
    verbs, variables = _make_verbs(), _make_variables()
    wrong = []
    # What make help and the recipes' messages name as VAR= (give PY310=, OVERLAY= MODEL_DIR=) is read.
    for where, text in [("make help", _make_help()), *(("Makefile", echo) for echo in _makefile_echoes())]:
        for name in re.findall(r"(?<![\w-])([A-Z][A-Z0-9_]*)=", text):
            if name not in variables:
                wrong.append(f"{where}: the Makefile reads no {name}")
    makefile = [("Makefile", re.sub(r"^(usage: )?make [^:]*: ", "", echo)) for echo in _makefile_echoes()]
    for where, text in source_texts() + doc_texts() + makefile:
        # "(I_KNOW=1 with make)", "DPU_TRD= with make": a variable on its own.
        for name in re.findall(r"(?<![\w-])([A-Z][A-Z0-9_]*)=\S* with make", text):
            if name not in variables:
                wrong.append(f"{where}: {name}= with make: the Makefile reads no {name}")
        # `make ...` in backticks, a shell line starting with make, or make with VAR=value words in prose.
        spans = re.findall(
            r"`(make [^`]*)`|^\s*(make [a-z][^#\n]*)|(?<![\w`])(make (?:[a-z-]+ )?(?:[A-Z][A-Z0-9_]*=\S* ?)+)",
            text,
            flags=re.M,
        )
        for span in spans:
            line = "".join(span).split()
            if len(line) < 2 or line[1].startswith("-"):  # make -j: make's own options
                continue
            verb = line[1] if not re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line[1]) else None
            if verb is not None and verb not in verbs:
                wrong.append(f"{where}: {' '.join(line)}: `make help` lists no verb {verb!r}")
            for word in line[2 if verb else 1 :]:
                name = re.fullmatch(r"\[?([A-Z][A-Z0-9_]*)=.*", word)
                if name and name.group(1) not in variables:
                    wrong.append(f"{where}: {' '.join(line)}: the Makefile reads no {name.group(1)}")
    assert wrong == []


def test_every_verb_make_help_lists_is_phony():
    """A verb missing from .PHONY does nothing once a file of its name exists (`make run` after a file run)."""
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.M).group(1).split()
    assert sorted(_make_verbs()) == sorted(phony)


def test_make_help_names_every_variable_a_verb_takes():
    """A variable with a default (`VAR ?= ...`) changes what a verb does: `make help` names it (VAR=)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = re.findall(r"^([A-Z][A-Z0-9_]*) *\?=", text, flags=re.M)
    assert [v for v in variables if f"{v}=" not in _make_help()] == []
