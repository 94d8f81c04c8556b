"""Routing policies: a small rule language compiled once, at config load, into plain Python closures.

    if input_tokens < 8k and tool_call_count <= 2:
      route gpt-5-mini-via-gateway
    elif header("x-tier") in ["batch", "eval"]:
      pass                          # no decision: the next policy / normal routing decides
    else:
      route claude-opus-fallback

Statements: `if`/`elif`/`else` blocks by indentation (nested, or one `route`/`pass` after the colon),
`route NAME` (letters, digits, - _ . : /, or a quoted string) and `pass`. The first `route` reached decides;
reaching the end without one is "no decision". Expressions: `< <= > >= == !=`, `and` `or` `not`, parentheses,
`in` / `not in` a literal list, numbers (`8000`, `8_000`, `2.5`, and `8k` = 8_000, `1m` = 1_000_000: decimal,
as context windows are quoted), strings in '…' or "…", `true`/`false`, `none`, `#` comments, the variables
in `VARIABLES` and the functions in `FUNCTIONS`. Types are checked at compile time: ordering compares numbers
only, `==` needs both sides of one type (or `none` against a value that can be none), and `and`/`or`/`not`/`if`
need true/false. At run time an ordering comparison with none is false; `==`/`!=`/`in` treat none as a value
of its own (`team != "x"` is true when team is none). The user's text is never given to eval, exec or ast:
a hand-written tokenizer and recursive-descent parser build closures from a fixed set of operations.
"""

from __future__ import annotations

import difflib
import keyword
import operator
import re
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from dragoman.errors import ConfigError
from dragoman.routing.features import RequestFeatures

Test = Callable[[RequestFeatures], Any]

VARIABLES: dict[str, tuple[str, bool]] = {  # name: (type, can be none)
    "input_tokens": ("number", False),
    "tool_call_count": ("number", False),
    "tools_count": ("number", False),
    "message_count": ("number", False),
    "has_images": ("bool", False),
    "thinking": ("bool", False),
    "model": ("str", False),
    "stream": ("bool", False),
    "developer": ("str", True),
    "repo": ("str", True),
    "team": ("str", True),
}
FUNCTIONS = {  # name: signature, for error messages; `header` takes a string literal
    "header": 'header("name") -> str or none',
    "startswith": "startswith(str, str) -> bool",
    "endswith": "endswith(str, str) -> bool",
    "contains": "contains(str, str) -> bool",
}
_STR_TESTS: dict[str, Callable[[str, str], bool]] = {
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": operator.contains,
}
_CONSTANTS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}
_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_EQUALITY = {"==": operator.eq, "!=": operator.ne}
_WORDS = frozenset(("and", "or", "not", "in", "if", "elif", "else", "route", "pass")) | frozenset(_CONSTANTS)
_SUFFIXES = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}
_CHAR_HINTS = {"=": "; did you mean '=='?", "!": "; use 'not'", "&": "; use 'and'", "|": "; use 'or'"}
_NOCONST: Any = object()

_SCAN = re.compile(
    r"""(?P<space>[ \t]+) | (?P<comment>\#.*) | (?P<number>[0-9][A-Za-z0-9_.]*) | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') | (?P<op><=|>=|==|!=|[<>()\[\],:.])""",
    re.VERBOSE,
)
_DIGITS = re.compile(r"[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?")  # Python's rules: 8_000, not 8__000 or 8_
_ROUTE_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
_ESCAPE = re.compile(r"\\(.)")


class Decision(msgspec.Struct, frozen=True):
    """A policy's choice: the route, the policy that chose it, and the branch that fired (for logs)."""

    route: str
    policy: str
    branch: str


class _Tok(NamedTuple):
    kind: str  # name | number | string | op | route (a bare route name) | end
    text: str
    value: Any
    col: int  # 1-based
    end: int  # column just after the token


class _Line(NamedTuple):
    number: int
    indent: int
    toks: list[_Tok]  # always ends with an "end" token
    text: str


class _Expr(NamedTuple):
    kind: str  # number | bool | str | none (a list literal has its items' kind, its frozenset as const)
    nullable: bool
    fn: Test
    start: int
    end: int
    const: Any = _NOCONST
    atoms: tuple[tuple[str, Test, tuple[tuple[str, Test], ...]], ...] = ()  # (text, test, variables read)
    reads: tuple[tuple[str, Test], ...] = ()


class _Route(NamedTuple):
    line: int
    decision: Decision


class _Pass(NamedTuple):
    line: int


class _Arm(NamedTuple):
    line: int
    label: str
    test: _Expr | None  # None: else
    body: tuple[_Stmt, ...]


class _If(NamedTuple):
    arms: tuple[_Arm, ...]


_Stmt = _Route | _Pass | _If


class Policy:
    """A compiled policy: `decide` runs closures built at compile time; `explain` replays them for a dry run."""

    def __init__(self, name: str, body: tuple[_Stmt, ...], variables: frozenset[str]) -> None:
        self.name = name
        self.variables = variables  # what decide() reads: feature names and header("…") calls
        self._body = body
        self._run = _compile_block(body)

    def decide(self, features: RequestFeatures) -> Decision | None:
        """The route this policy picks for a request, or None (no decision: fall through)."""
        return self._run(features)

    def routes(self) -> tuple[str, ...]:
        """Every route the policy can name, in the order written."""
        names: dict[str, None] = {}
        _collect_routes(self._body, names)
        return tuple(names)

    def explain(self, features: RequestFeatures) -> list[str]:
        """A dry run: each condition evaluated, with its parts and the variables they read, then the outcome."""
        out: list[str] = []
        decision = _explain_block(self._body, features, out, "")
        out.append(f"=> route {decision.route} ({decision.branch})" if decision else "=> no decision (falls through)")
        return out


def compile_policy(
    name: str, rule: str, *, source: str = "<config>", first_line: int = 1, routes: Collection[str] | None = None
) -> Policy:
    """Compile rule text; a ConfigError locates any problem at `source:<absolute line>` (rule line 1 = first_line)."""
    parser = _Parser(name, source, first_line, routes)
    lines = parser.lex(rule)
    body, _ = parser.block(lines, 0, lines[0].indent if lines else 0, (), "")
    return Policy(name, body, frozenset(parser.variables))


# --- tokenizer ---------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, name: str, source: str, first_line: int, routes: Collection[str] | None) -> None:
        self.name, self.source, self.first_line = name, source, first_line
        self.known_routes = None if routes is None else list(routes)
        self.variables: set[str] = set()
        self.toks: list[_Tok] = []
        self.pos = 0
        self.line = 0
        self.text = ""

    def error(self, line: int, col: int, problem: str) -> ConfigError:
        where = f"{self.source}:{self.first_line + line - 1}"
        return ConfigError(f"{where}: policy {self.name}, rule line {line}, column {col}: {problem}")

    def lex(self, rule: str) -> list[_Line]:
        lines = []
        for number, text in enumerate(rule.splitlines(), 1):
            body = text.lstrip(" ")
            if body.startswith("\t"):
                raise self.error(number, len(text) - len(body) + 1, "indent with spaces, not tabs")
            toks = self._lex_line(number, text, len(text) - len(body))
            if len(toks) > 1:
                lines.append(_Line(number, len(text) - len(body), toks, text))
        return lines

    def _lex_line(self, number: int, text: str, pos: int) -> list[_Tok]:
        toks: list[_Tok] = []
        while pos < len(text):
            if toks and toks[-1].text == "route" and (len(toks) == 1 or toks[-2].text == ":"):
                # A route name is not an expression: gpt-5-mini would otherwise lex as gpt - 5 - mini.
                found = _ROUTE_NAME.match(text, _skip_spaces(text, pos))
                if found:
                    toks.append(_Tok("route", found.group(), found.group(), found.start() + 1, found.end() + 1))
                    pos = found.end()
                    continue
            found = _SCAN.match(text, pos)
            if found is None:
                char = text[pos]
                problem = "unterminated string" if char in "\"'" else f"unexpected character {char!r}"
                raise self.error(number, pos + 1, problem + _CHAR_HINTS.get(char, ""))
            kind, word = found.lastgroup or "", found.group()
            if kind not in ("space", "comment"):
                toks.append(_Tok(kind, word, self._value(kind, word, number, pos + 1), pos + 1, found.end() + 1))
            pos = found.end()
        toks.append(_Tok("end", "", None, len(text) + 1, len(text) + 1))
        return toks

    def _value(self, kind: str, word: str, line: int, col: int) -> Any:
        if kind == "string":
            return _ESCAPE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), word[1:-1])
        if kind != "number":
            return None
        digits = word.rstrip("kKmM")
        scale = _SUFFIXES.get(word[len(digits) :])
        if scale is None or not _DIGITS.fullmatch(digits):
            raise self.error(line, col, f"bad number {word!r} (write 8000, 8_000, 2.5, 8k or 1m)")
        value = Decimal(digits) * scale  # Decimal: 0.1k is 100, where float arithmetic gives 100.00000000000001
        return int(value) if value == value.to_integral_value() else float(value)

    # --- statements --------------------------------------------------------------------------------------

    def block(
        self, lines: list[_Line], i: int, indent: int, outer: tuple[int, ...], branch: str
    ) -> tuple[tuple[_Stmt, ...], int]:
        """The statements at `indent` from lines[i]; returns them and the index of the first line after."""
        stmts: list[_Stmt] = []
        while i < len(lines):
            line = lines[i]
            if line.indent < indent:
                if line.indent not in outer:
                    raise self.error(line.number, line.indent + 1, "unindent does not match any outer block")
                break
            if line.indent > indent:
                raise self.error(line.number, line.indent + 1, "unexpected indent")
            if stmts and _always_decides(stmts[-1]):
                raise self.error(line.number, indent + 1, "unreachable: the statement before always decides")
            stmt, i = self._statement(lines, i, outer + (indent,), branch)
            stmts.append(stmt)
        return tuple(stmts), i

    def _statement(self, lines: list[_Line], i: int, outer: tuple[int, ...], branch: str) -> tuple[_Stmt, int]:
        line = lines[i]
        self._start(line)
        word = self.toks[0].text if self.toks[0].kind == "name" else ""
        if word == "if":
            return self._if_chain(lines, i, outer, branch)
        if word in ("elif", "else"):
            raise self.error(line.number, self.toks[0].col, f"'{word}' without a matching 'if'")
        return self._simple(branch), i + 1

    def _simple(self, branch: str) -> _Stmt:
        tok = self._next()
        if tok.text == "pass" and tok.kind == "name":
            self._expect_end("after 'pass'")
            return _Pass(self.line)
        if tok.text == "route" and tok.kind == "name":
            return self._route(branch)
        if tok.kind == "name" and keyword.iskeyword(tok.text) and tok.text not in _WORDS:
            problem = f"'{tok.text}' is not part of the rule language; statements are if, elif, else, route, pass"
            raise self.error(self.line, tok.col, problem)
        raise self.error(self.line, tok.col, f"expected a statement (if, route or pass), got {_describe(tok)}")

    def _route(self, branch: str) -> _Route:
        tok = self._next()
        if tok.kind not in ("route", "string") or not tok.value:
            raise self.error(self.line, tok.col, f"expected a route name after 'route', got {_describe(tok)}")
        if self.known_routes is not None and tok.value not in self.known_routes:
            known = ", ".join(self.known_routes)
            raise self.error(self.line, tok.col, f'no route named "{tok.value}"; routes: {known}')
        self._expect_end("after the route name")
        return _Route(self.line, Decision(tok.value, self.name, branch or "always"))

    def _if_chain(self, lines: list[_Line], i: int, outer: tuple[int, ...], branch: str) -> tuple[_If, int]:
        arms: list[_Arm] = []
        indent = lines[i].indent
        while True:
            line = lines[i]
            self._start(line)
            word = self._next().text
            test = None if word == "else" else self._condition(f"'{word}'")
            colon = self._next()
            if colon.text != ":" or colon.kind != "op":
                raise self.error(line.number, colon.col, f"expected ':' after {_header(word)}, got {_describe(colon)}")
            label = word if test is None else f"{word} {' '.join(line.text[test.start - 1 : test.end - 1].split())}"
            full = f"{branch} / {label}" if branch else label
            if self._peek().kind != "end":
                body: tuple[_Stmt, ...] = (self._simple(full),)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1].indent > indent:
                body, i = self.block(lines, i + 1, lines[i + 1].indent, outer, full)
            else:
                where = lines[i + 1] if i + 1 < len(lines) else None
                line_no, col = (where.number, where.indent + 1) if where else (line.number, colon.end)
                raise self.error(line_no, col, f"expected an indented block after '{word}' on rule line {line.number}")
            arms.append(_Arm(line.number, label, test, body))
            following = lines[i].toks[0] if i < len(lines) and lines[i].indent == indent else None
            if test is None or following is None or following.text not in ("elif", "else"):
                return _If(tuple(arms)), i

    # --- expressions -------------------------------------------------------------------------------------

    def _start(self, line: _Line) -> None:
        self.toks, self.pos, self.line, self.text = line.toks, 0, line.number, line.text

    def _peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.pos + ahead, len(self.toks) - 1)]

    def _next(self) -> _Tok:
        tok = self._peek()
        self.pos = min(self.pos + 1, len(self.toks) - 1)
        return tok

    def _is(self, word: str, ahead: int = 0) -> bool:
        tok = self._peek(ahead)
        return tok.text == word and tok.kind in ("name", "op")

    def _expect_end(self, where: str) -> None:
        tok = self._peek()
        if tok.kind != "end":
            raise self.error(self.line, tok.col, f"expected end of line {where}, got {_describe(tok)}")

    def _condition(self, context: str) -> _Expr:
        return self._need_bool(self._or(), context)

    def _need_bool(self, expr: _Expr, context: str) -> _Expr:
        if expr.kind != "bool":
            text = self._text(expr)
            hint = f" (compare it: {text} != none)" if expr.nullable and expr.kind == "str" else ""
            problem = f"{context} needs a true/false condition, got {expr.kind} {text}{hint}"
            raise self.error(self.line, expr.start, problem)
        return expr

    def _text(self, expr: _Expr) -> str:
        return " ".join(self.text[expr.start - 1 : expr.end - 1].split())

    def _or(self) -> _Expr:
        left = self._and()
        while self._is("or"):
            self._next()
            left = _logic(self._need_bool(left, "'or'"), self._need_bool(self._and(), "'or'"), either=True)
        return left

    def _and(self) -> _Expr:
        left = self._not()
        while self._is("and"):
            self._next()
            left = _logic(self._need_bool(left, "'and'"), self._need_bool(self._not(), "'and'"), either=False)
        return left

    def _not(self) -> _Expr:
        if not self._is("not"):
            return self._comparison()
        start = self._next().col
        inner = self._need_bool(self._not(), "'not'")
        test = inner.fn
        return inner._replace(fn=lambda f: not test(f), start=start, const=_NOCONST)

    def _comparison(self) -> _Expr:
        left = self._primary()
        op = self._peek()
        if op.kind == "op" and (op.text in _ORDERING or op.text in _EQUALITY):
            self._next()
            expr = self._compare(op, left, self._primary())
        elif self._is("in") or (self._is("not") and self._is("in", 1)):
            negate = self._next().text == "not"
            if negate:
                self._next()
            expr = self._membership(op, left, self._list(), negate)
        else:
            return left
        tok = self._peek()
        if tok.kind == "op" and (tok.text in _ORDERING or tok.text in _EQUALITY) or self._is("in"):
            raise self.error(self.line, tok.col, "comparisons cannot be chained; join them with 'and'")
        return expr

    def _compare(self, op: _Tok, left: _Expr, right: _Expr) -> _Expr:
        if op.text in _ORDERING:
            for side in (left, right):
                if side.kind != "number":
                    problem = f"'{op.text}' compares numbers, got {side.kind} {self._text(side)}"
                    raise self.error(self.line, side.start, problem)
            return self._atom(left, right, _compare_fn(_ORDERING[op.text], left, right, guard_none=True))
        for a, b in ((left, right), (right, left)):
            if a.kind == "none" and b.kind != "none" and not b.nullable:
                raise self.error(self.line, b.start, f"{self._text(b)} is never none")
        if left.kind != right.kind and "none" not in (left.kind, right.kind):
            problem = f"cannot compare {left.kind} {self._text(left)} with {right.kind} {self._text(right)}"
            raise self.error(self.line, op.col, problem)
        return self._atom(left, right, _compare_fn(_EQUALITY[op.text], left, right, guard_none=False))

    def _membership(self, op: _Tok, left: _Expr, items: _Expr, negate: bool) -> _Expr:
        values = items.const
        if values and left.kind != items.kind:
            problem = f"{self._text(left)} is {left.kind}, the list holds {items.kind} values"
            raise self.error(self.line, left.start, problem)
        test = left.fn
        fn = (lambda f: test(f) not in values) if negate else (lambda f: test(f) in values)
        return self._atom(left, items, fn)

    def _atom(self, left: _Expr, right: _Expr, fn: Test) -> _Expr:
        expr = _Expr("bool", False, fn, left.start, right.end, reads=left.reads + right.reads)
        return expr._replace(atoms=((self._text(expr), fn, expr.reads),))

    def _list(self) -> _Expr:
        start = self._next()
        if start.text != "[":
            problem = f'expected a list like ["a", "b"] after \'in\', got {_describe(start)}'
            raise self.error(self.line, start.col, problem)
        values: list[Any] = []
        kinds = set()
        while not self._is("]"):
            tok = self._next()
            if tok.kind not in ("string", "number"):
                raise self.error(self.line, tok.col, f"expected a string or number in the list, got {_describe(tok)}")
            values.append(tok.value)
            kinds.add(tok.kind)
            if not self._is("]") and self._next().text != ",":
                raise self.error(self.line, self._peek(-1).col, "expected ',' or ']' in the list")
        end = self._next().end
        if len(kinds) > 1:
            raise self.error(self.line, start.col, "a list holds strings or numbers, not both")
        kind = "str" if "string" in kinds else "number"
        return _Expr(kind, False, lambda f: None, start.col, end, const=frozenset(values))

    def _primary(self) -> _Expr:
        tok = self._next()
        if tok.kind in ("number", "string"):
            value = tok.value
            kind = "number" if tok.kind == "number" else "str"
            expr = _Expr(kind, False, lambda f: value, tok.col, tok.end, const=value)
        elif tok.kind == "name":
            expr = self._name(tok)
        elif tok.text == "(":
            inner = self._or()
            close = self._next()
            if close.text != ")":
                raise self.error(self.line, close.col, f"expected ')', got {_describe(close)}")
            expr = inner._replace(start=tok.col, end=close.end)
        else:
            what = "a list can only follow 'in'" if tok.text == "[" else f"expected an expression, got {_describe(tok)}"
            raise self.error(self.line, tok.col, what)
        after = self._peek()
        if after.text == "." and after.kind == "op":
            raise self.error(self.line, after.col, "attribute access ('.') is not allowed")
        if after.text in ("(", "[") and after.kind == "op":
            what = "indexing is not allowed" if after.text == "[" else f"{_describe(tok)} is not a function"
            raise self.error(self.line, after.col, what)
        return expr

    def _name(self, tok: _Tok) -> _Expr:
        word = tok.text
        if word in _CONSTANTS:
            value = _CONSTANTS[word]
            return _Expr("none" if value is None else "bool", value is None, lambda f: value, tok.col, tok.end, value)
        if word in VARIABLES:
            kind, nullable = VARIABLES[word]
            self.variables.add(word)
            get = operator.attrgetter(word)
            return _Expr(kind, nullable, get, tok.col, tok.end, reads=((word, get),))
        if self._is("("):
            return self._call(tok)
        if word in _WORDS:
            raise self.error(self.line, tok.col, f"expected an expression, got '{word}'")
        if keyword.iskeyword(word):
            raise self.error(self.line, tok.col, f"'{word}' is not part of the rule language")
        if word.startswith("_"):
            raise self.error(self.line, tok.col, f"names starting with '_' are not allowed ({word})")
        close = difflib.get_close_matches(word, VARIABLES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise self.error(self.line, tok.col, f"unknown variable '{word}'; {hint}variables: {', '.join(VARIABLES)}")

    def _call(self, tok: _Tok) -> _Expr:
        if tok.text not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise self.error(self.line, tok.col, f"unknown function '{tok.text}'; functions: {known}")
        self._next()  # (
        args = [] if self._is(")") else [self._or()]
        while self._is(","):
            self._next()
            args.append(self._or())
        close = self._next()
        if close.text != ")":
            raise self.error(self.line, close.col, f"expected ')' or ',', got {_describe(close)}")
        if tok.text == "header":
            return self._header(tok, args, close)
        if len(args) != 2 or any(a.kind != "str" for a in args):
            raise self.error(self.line, tok.col, f"expected {FUNCTIONS[tok.text]}")
        fn = _str_test(_STR_TESTS[tok.text], args[0].fn, args[1].fn)
        expr = _Expr("bool", False, fn, tok.col, close.end, reads=args[0].reads + args[1].reads)
        return expr._replace(atoms=((self._text(expr), fn, expr.reads),))

    def _header(self, tok: _Tok, args: list[_Expr], close: _Tok) -> _Expr:
        if len(args) != 1 or args[0].kind != "str" or args[0].const is _NOCONST:
            raise self.error(self.line, tok.col, f"expected {FUNCTIONS['header']} with a quoted header name")
        name = args[0].const.lower()  # HTTP header names are case-insensitive; features look up lower case
        label = f'header("{name}")'
        self.variables.add(label)
        get: Test = lambda f: f.header(name)
        return _Expr("str", True, get, tok.col, close.end, reads=((label, get),))


# --- closures ----------------------------------------------------------------------------------------------


def _logic(left: _Expr, right: _Expr, *, either: bool) -> _Expr:
    a, b = left.fn, right.fn
    fn: Test = (lambda f: a(f) or b(f)) if either else (lambda f: a(f) and b(f))
    atoms, reads = left.atoms + right.atoms, left.reads + right.reads
    return _Expr("bool", False, fn, left.start, right.end, atoms=atoms, reads=reads)


def _compare_fn(op: Callable[[Any, Any], bool], left: _Expr, right: _Expr, *, guard_none: bool) -> Test:
    # Specialised on a literal right side (the common `input_tokens < 8000`): one call fewer per test.
    get, other = left.fn, right.fn
    guard = guard_none and (left.nullable or right.nullable)
    if right.const is not _NOCONST and not guard:
        value = right.const
        return lambda f: op(get(f), value)

    def test(f: RequestFeatures) -> bool:
        a, b = get(f), other(f)
        return not (guard and (a is None or b is None)) and op(a, b)

    return test


def _str_test(op: Callable[[str, str], bool], first: Test, second: Test) -> Test:
    def test(f: RequestFeatures) -> bool:
        a, b = first(f), second(f)
        return a is not None and b is not None and op(a, b)  # none: false, never an exception

    return test


def _no_decision(f: RequestFeatures) -> None:
    return None


def _compile_block(stmts: tuple[_Stmt, ...]) -> Callable[[RequestFeatures], Decision | None]:
    runs = tuple(_compile_stmt(s) for s in stmts if not isinstance(s, _Pass))
    if not runs:
        return _no_decision
    if len(runs) == 1:
        return runs[0]

    def run(f: RequestFeatures) -> Decision | None:
        for step in runs:
            decision = step(f)
            if decision is not None:
                return decision
        return None

    return run


def _compile_stmt(stmt: _Stmt) -> Callable[[RequestFeatures], Decision | None]:
    if isinstance(stmt, _Route):
        decision = stmt.decision
        return lambda f: decision
    assert isinstance(stmt, _If)
    arms = tuple((arm.test.fn, _compile_block(arm.body)) for arm in stmt.arms if arm.test is not None)
    last = stmt.arms[-1]
    otherwise = _compile_block(last.body) if last.test is None else _no_decision

    def run(f: RequestFeatures) -> Decision | None:
        for test, body in arms:
            if test(f):
                return body(f)  # a taken branch without a route falls through past the whole if
        return otherwise(f)

    return run


# --- helpers -----------------------------------------------------------------------------------------------


def _always_decides(stmt: _Stmt) -> bool:
    if isinstance(stmt, _Route):
        return True
    if isinstance(stmt, _Pass):
        return False
    return stmt.arms[-1].test is None and all(any(map(_always_decides, arm.body)) for arm in stmt.arms)


def _collect_routes(stmts: tuple[_Stmt, ...], names: dict[str, None]) -> None:
    for stmt in stmts:
        if isinstance(stmt, _Route):
            names[stmt.decision.route] = None
        elif isinstance(stmt, _If):
            for arm in stmt.arms:
                _collect_routes(arm.body, names)


def _explain_block(stmts: tuple[_Stmt, ...], f: RequestFeatures, out: list[str], pad: str) -> Decision | None:
    for stmt in stmts:
        if isinstance(stmt, _Route):
            out.append(f"{pad}rule line {stmt.line}: route {stmt.decision.route}")
            return stmt.decision
        if isinstance(stmt, _Pass):
            out.append(f"{pad}rule line {stmt.line}: pass")
            continue
        for arm in stmt.arms:
            taken = arm.test is None or bool(arm.test.fn(f))
            out.append(f"{pad}rule line {arm.line}: {arm.label}" + ("" if arm.test is None else f" -> {_show(taken)}"))
            for text, test, reads in arm.test.atoms if arm.test is not None and len(arm.test.atoms) > 1 else ():
                values = ", ".join(f"{label} = {_show(get(f))}" for label, get in reads)
                out.append(f"{pad}    {text} -> {_show(bool(test(f)))}" + (f"  ({values})" if values else ""))
            if arm.test is not None and len(arm.test.atoms) == 1 and arm.test.reads:
                out[-1] += "  (" + ", ".join(f"{label} = {_show(get(f))}" for label, get in arm.test.reads) + ")"
            if taken:
                decision = _explain_block(arm.body, f, out, pad + "  ")
                if decision is not None:
                    return decision
                break
    return None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _describe(tok: _Tok) -> str:
    return "end of line" if tok.kind == "end" else (tok.text if tok.kind == "string" else f"'{tok.text}'")


def _header(word: str) -> str:
    return "'else'" if word == "else" else "the condition"


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos
