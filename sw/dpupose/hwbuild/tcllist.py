"""Tcl list parsing in pure Python (what Tcl_SplitList does), for reading recorded Vivado arguments.

The stand-in records each Vivado command's arguments as strings; structured ones (``-dict {...}``,
``PFM.CLOCK {clk_out1 {id "0" ...}}``) are Tcl lists that need the Tcl parser's rules: braces nest and
take their content literally, double quotes and bare words get backslash substitution. Tests compare this
parser with the real Tcl interpreter's (tkinter) on awkward inputs.

API:
    split_list(text) -> list[str]
    list_dict(text) -> dict[str, str]      a list of key/value pairs (later keys win, as in Tcl dicts)
"""

from __future__ import annotations

from dpupose.errors import ArtifactError

_SPACE = " \t\n\r\v\f"
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_HEX = "0123456789abcdefABCDEF"


class TclListError(ArtifactError):
    """Text that is not a well-formed Tcl list."""


def _word(text: str, j: int, stop: str) -> tuple[str, int]:
    """Characters from j up to the first one in `stop` (or the end), backslash sequences substituted;
    returns the word and the index of the stopping character."""
    word = []
    while j < len(text) and text[j] not in stop:
        if text[j] == "\\":
            sub, j = _backslash(text, j)
            word.append(sub)
        else:
            word.append(text[j])
            j += 1
    return "".join(word), j


def _backslash(text: str, i: int) -> tuple[str, int]:
    """Substitute the backslash sequence starting at text[i] == '\\'; returns (replacement, next index)."""
    if i + 1 >= len(text):
        return "\\", i + 1
    c = text[i + 1]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 2
    if c == "\n":
        j = i + 2
        while j < len(text) and text[j] in " \t":
            j += 1
        return " ", j
    if c in "01234567":  # up to three digits, stopping before the value passes \377 (\400: a space, then 0)
        value, j = int(c), i + 2
        while j < len(text) and j < i + 4 and text[j] in "01234567" and value < 0o40:
            value, j = value * 8 + int(text[j]), j + 1
        return chr(value), j
    for prefix, width in (("x", 2), ("u", 4), ("U", 8)):
        if c == prefix:  # stopping, as Tcl does, before a digit that could take the value past U+10FFFF
            value, j = 0, i + 2
            while j < len(text) and j < i + 2 + width and text[j] in _HEX and value <= 0x10FFF:
                value, j = value * 16 + int(text[j], 16), j + 1
            if j == i + 2:
                return c, i + 2
            return chr(value), j
    return c, i + 2


def split_list(text: str) -> list[str]:
    """Split a Tcl list into its elements (TclListError if it is malformed)."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            return out
        c = text[i]
        if c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise TclListError(f"unmatched open brace in list: {text!r}")
            out.append(text[i + 1 : j - 1])
            i = j
        elif c == '"':
            word, j = _word(text, i + 1, '"')
            if j >= n:
                raise TclListError(f"unmatched open quote in list: {text!r}")
            out.append(word)
            i = j + 1
        else:
            word, i = _word(text, i, _SPACE)
            out.append(word)
            continue
        if i < n and text[i] not in _SPACE:
            raise TclListError(f"list element in {'braces' if c == '{' else 'quotes'} followed by {text[i]!r}")


def list_dict(text: str) -> dict[str, str]:
    """A Tcl dict (key value key value ...) as a Python dict."""
    items = split_list(text)
    if len(items) % 2:
        raise TclListError(f"missing value to go with key in dict: {text!r}")
    return dict(zip(items[0::2], items[1::2]))
