"""The routing policy language's tokenizer: rule text → lines of tokens, each token with its column.

Hand-written over one regular expression: the user's text is never given to eval, exec or ast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from dragoman.errors import ConfigError

Locate = Callable[[int, int, str], ConfigError]  # (rule line, column, problem) → the error to raise

_SUFFIXES = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}
_CHAR_HINTS = {"=": "; did you mean '=='?", "!": "; use 'not'", "&": "; use 'and'", "|": "; use 'or'"}
_SCAN = re.compile(
    r"""(?P<space>[ \t]+) | (?P<comment>\#.*) | (?P<number>[0-9][A-Za-z0-9_.]*) | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') | (?P<op><=|>=|==|!=|[<>()\[\],:.])""",
    re.VERBOSE,
)
_DIGITS = re.compile(r"[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?")  # Python's rules: 8_000, not 8__000 or 8_
_ROUTE_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
_ESCAPE = re.compile(r"\\(.)")


class Token(NamedTuple):
    kind: str  # name | number | string | op | route (a bare route name) | end
    text: str
    value: Any
    col: int  # 1-based
    end: int  # column just after the token


class Line(NamedTuple):
    number: int
    indent: int
    toks: list[Token]  # always ends with an "end" token
    text: str


def tokenize(rule: str, error: Locate) -> list[Line]:
    """The rule's lines that hold tokens (blank and comment-only lines dropped); `error` locates a bad token."""
    lines = []
    for number, text in enumerate(rule.splitlines(), 1):
        body = text.lstrip(" ")
        if body.startswith("\t"):
            raise error(number, len(text) - len(body) + 1, "indent with spaces, not tabs")
        toks = _tokenize_line(number, text, len(text) - len(body), error)
        if len(toks) > 1:
            lines.append(Line(number, len(text) - len(body), toks, text))
    return lines


def _tokenize_line(number: int, text: str, pos: int, error: Locate) -> list[Token]:
    toks: list[Token] = []
    while pos < len(text):
        if toks and toks[-1].text == "route" and (len(toks) == 1 or toks[-2].text == ":"):
            # A route name is not an expression: gpt-5-mini would otherwise lex as gpt - 5 - mini.
            found = _ROUTE_NAME.match(text, _skip_spaces(text, pos))
            if found:
                toks.append(Token("route", found.group(), found.group(), found.start() + 1, found.end() + 1))
                pos = found.end()
                continue
        found = _SCAN.match(text, pos)
        if found is None:
            char = text[pos]
            problem = "unterminated string" if char in "\"'" else f"unexpected character {char!r}"
            raise error(number, pos + 1, problem + _CHAR_HINTS.get(char, ""))
        kind, word = found.lastgroup or "", found.group()
        if kind not in ("space", "comment"):
            toks.append(Token(kind, word, _value(kind, word, number, pos + 1, error), pos + 1, found.end() + 1))
        pos = found.end()
    toks.append(Token("end", "", None, len(text) + 1, len(text) + 1))
    return toks


def _value(kind: str, word: str, line: int, col: int, error: Locate) -> Any:
    if kind == "string":
        return _ESCAPE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), word[1:-1])
    if kind != "number":
        return None
    digits = word.rstrip("kKmM")
    scale = _SUFFIXES.get(word[len(digits) :])
    if scale is None or not _DIGITS.fullmatch(digits):
        raise error(line, col, f"bad number {word!r} (write 8000, 8_000, 2.5, 8k or 1m)")
    value = Decimal(digits) * scale  # Decimal: 0.1k is 100, where float arithmetic gives 100.00000000000001
    return int(value) if value == value.to_integral_value() else float(value)


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos
