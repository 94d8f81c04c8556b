"""The routing policy language's syntax: the tree a rule parses to, and the errors that locate a mistake.

A hand-written recursive-descent parser over `policy_tokens` (the user's text never goes to eval, exec or ast).
Types are checked here, while the source position is known; `dragoman.policy.language` turns the checked tree
into closures. The language itself is described in that module's docstring.
"""

from __future__ import annotations

import difflib
import keyword
from collections.abc import Collection
from typing import Any, NamedTuple

from dragoman.errors import ConfigError
from dragoman.policy.tokens import Line, Token, tokenize

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
ORDERING = frozenset(("<", "<=", ">", ">="))  # numbers only; false when either side is none
EQUALITY = frozenset(("==", "!="))
_CONSTANTS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}
_WORDS = frozenset(("and", "or", "not", "in", "if", "elif", "else", "route", "pass")) | frozenset(_CONSTANTS)


class Expr(NamedTuple):
    """A type-checked expression. `op` says what it computes from `args` and `value`:

    const (value), var (value: the feature name), header (value: the lower-case header name), list (value: a
    frozenset; a list has its items' kind), one of ORDERING/EQUALITY (args: left, right), in / not in (args:
    left, list), call (value: the function name; args), and / or (args: left, right), not (args: inner).
    Parentheses leave no node of their own: the inner expression, its span widened."""

    op: str
    kind: str  # number | bool | str | none
    nullable: bool
    start: int
    end: int
    args: tuple[Expr, ...] = ()
    value: Any = None
    label: str = ""  # for a dry run: a test's source text, or the name of a variable read


class RouteStatement(NamedTuple):
    line: int
    route: str
    branch: str  # the arms that lead here, "always" at the top level


class PassStatement(NamedTuple):
    line: int


class Arm(NamedTuple):
    line: int
    label: str
    test: Expr | None  # None: else
    body: tuple[Statement, ...]


class IfStatement(NamedTuple):
    arms: tuple[Arm, ...]


Statement = RouteStatement | PassStatement | IfStatement
TESTS = frozenset(ORDERING | EQUALITY | {"in", "not in", "call"})  # expressions a dry run shows one by one


def parse_rule(
    name: str, rule: str, source: str, first_line: int, routes: Collection[str] | None
) -> tuple[tuple[Statement, ...], frozenset[str]]:
    """The statements of a rule, and the variables it reads; ConfigError at `source:<line>` for any mistake."""
    parser = _Parser(name, source, first_line, routes)
    lines = tokenize(rule, parser.error)
    body, _ = parser.block(lines, 0, lines[0].indent if lines else 0, (), "")
    return body, frozenset(parser.variables)


class _Parser:
    def __init__(self, name: str, source: str, first_line: int, routes: Collection[str] | None) -> None:
        self.name, self.source, self.first_line = name, source, first_line
        self.known_routes = None if routes is None else list(routes)
        self.variables: set[str] = set()
        self.toks: list[Token] = []
        self.pos = 0
        self.line = 0
        self.text = ""

    def error(self, line: int, col: int, problem: str) -> ConfigError:
        where = f"{self.source}:{self.first_line + line - 1}"
        return ConfigError(f"{where}: policy {self.name}, rule line {line}, column {col}: {problem}")

    # --- statements --------------------------------------------------------------------------------------

    def block(
        self, lines: list[Line], i: int, indent: int, outer: tuple[int, ...], branch: str
    ) -> tuple[tuple[Statement, ...], int]:
        """The statements at `indent` from lines[i]; returns them and the index of the first line after."""
        stmts: list[Statement] = []
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

    def _statement(self, lines: list[Line], i: int, outer: tuple[int, ...], branch: str) -> tuple[Statement, int]:
        line = lines[i]
        self._start(line)
        word = self.toks[0].text if self.toks[0].kind == "name" else ""
        if word == "if":
            return self._if_chain(lines, i, outer, branch)
        if word in ("elif", "else"):
            raise self.error(line.number, self.toks[0].col, f"'{word}' without a matching 'if'")
        return self._simple(branch), i + 1

    def _simple(self, branch: str) -> Statement:
        tok = self._next()
        if tok.text == "pass" and tok.kind == "name":
            self._expect_end("after 'pass'")
            return PassStatement(self.line)
        if tok.text == "route" and tok.kind == "name":
            return self._route(branch)
        if tok.kind == "name" and keyword.iskeyword(tok.text) and tok.text not in _WORDS:
            problem = f"'{tok.text}' is not part of the rule language; statements are if, elif, else, route, pass"
            raise self.error(self.line, tok.col, problem)
        raise self.error(self.line, tok.col, f"expected a statement (if, route or pass), got {_describe(tok)}")

    def _route(self, branch: str) -> RouteStatement:
        tok = self._next()
        if tok.kind not in ("route", "string") or not tok.value:
            raise self.error(self.line, tok.col, f"expected a route name after 'route', got {_describe(tok)}")
        if self.known_routes is not None and tok.value not in self.known_routes:
            known = ", ".join(self.known_routes)
            raise self.error(self.line, tok.col, f'no route named "{tok.value}"; routes: {known}')
        self._expect_end("after the route name")
        return RouteStatement(self.line, tok.value, branch or "always")

    def _if_chain(self, lines: list[Line], i: int, outer: tuple[int, ...], branch: str) -> tuple[IfStatement, int]:
        arms: list[Arm] = []
        indent = lines[i].indent
        while True:
            line = lines[i]
            self._start(line)
            word = self._next().text
            test = None if word == "else" else self._condition(f"'{word}'")
            colon = self._next()
            if colon.text != ":" or colon.kind != "op":
                raise self.error(line.number, colon.col, f"expected ':' after {_header(word)}, got {_describe(colon)}")
            label = word if test is None else f"{word} {self._text(test)}"
            full = f"{branch} / {label}" if branch else label
            if self._peek().kind != "end":
                body: tuple[Statement, ...] = (self._simple(full),)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1].indent > indent:
                body, i = self.block(lines, i + 1, lines[i + 1].indent, outer, full)
            else:
                where = lines[i + 1] if i + 1 < len(lines) else None
                line_no, col = (where.number, where.indent + 1) if where else (line.number, colon.end)
                raise self.error(line_no, col, f"expected an indented block after '{word}' on rule line {line.number}")
            arms.append(Arm(line.number, label, test, body))
            following = lines[i].toks[0] if i < len(lines) and lines[i].indent == indent else None
            if test is None or following is None or following.text not in ("elif", "else"):
                return IfStatement(tuple(arms)), i

    # --- expressions -------------------------------------------------------------------------------------

    def _start(self, line: Line) -> None:
        self.toks, self.pos, self.line, self.text = line.toks, 0, line.number, line.text

    def _peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.pos + ahead, len(self.toks) - 1)]

    def _next(self) -> Token:
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

    def _condition(self, context: str) -> Expr:
        return self._need_bool(self._or(), context)

    def _need_bool(self, expr: Expr, context: str) -> Expr:
        if expr.kind != "bool":
            text = self._text(expr)
            hint = f" (compare it: {text} != none)" if expr.nullable and expr.kind == "str" else ""
            problem = f"{context} needs a true/false condition, got {expr.kind} {text}{hint}"
            raise self.error(self.line, expr.start, problem)
        return expr

    def _text(self, expr: Expr) -> str:
        return " ".join(self.text[expr.start - 1 : expr.end - 1].split())

    def _or(self) -> Expr:
        left = self._and()
        while self._is("or"):
            self._next()
            left = self._need_bool(left, "'or'")
            right = self._need_bool(self._and(), "'or'")
            left = Expr("or", "bool", False, left.start, right.end, (left, right))
        return left

    def _and(self) -> Expr:
        left = self._not()
        while self._is("and"):
            self._next()
            left = self._need_bool(left, "'and'")
            right = self._need_bool(self._not(), "'and'")
            left = Expr("and", "bool", False, left.start, right.end, (left, right))
        return left

    def _not(self) -> Expr:
        if not self._is("not"):
            return self._comparison()
        start = self._next().col
        inner = self._need_bool(self._not(), "'not'")
        return Expr("not", "bool", False, start, inner.end, (inner,))

    def _comparison(self) -> Expr:
        left = self._primary()
        op = self._peek()
        if op.kind == "op" and (op.text in ORDERING or op.text in EQUALITY):
            self._next()
            expr = self._compare(op, left, self._primary())
        elif self._is("in") or (self._is("not") and self._is("in", 1)):
            negate = self._next().text == "not"
            if negate:
                self._next()
            expr = self._membership(left, self._list(), negate)
        else:
            return left
        tok = self._peek()
        if tok.kind == "op" and (tok.text in ORDERING or tok.text in EQUALITY) or self._is("in"):
            raise self.error(self.line, tok.col, "comparisons cannot be chained; join them with 'and'")
        return expr

    def _compare(self, op: Token, left: Expr, right: Expr) -> Expr:
        if op.text in ORDERING:
            for side in (left, right):
                if side.kind != "number":
                    problem = f"'{op.text}' compares numbers, got {side.kind} {self._text(side)}"
                    raise self.error(self.line, side.start, problem)
            return self._test(op.text, (left, right), left.start, right.end)
        for a, b in ((left, right), (right, left)):
            if a.kind == "none" and b.kind != "none" and not b.nullable:
                raise self.error(self.line, b.start, f"{self._text(b)} is never none")
        if left.kind != right.kind and "none" not in (left.kind, right.kind):
            problem = f"cannot compare {left.kind} {self._text(left)} with {right.kind} {self._text(right)}"
            raise self.error(self.line, op.col, problem)
        return self._test(op.text, (left, right), left.start, right.end)

    def _membership(self, left: Expr, items: Expr, negate: bool) -> Expr:
        if items.value and left.kind != items.kind:
            problem = f"{self._text(left)} is {left.kind}, the list holds {items.kind} values"
            raise self.error(self.line, left.start, problem)
        return self._test("not in" if negate else "in", (left, items), left.start, items.end)

    def _test(self, op: str, args: tuple[Expr, ...], start: int, end: int, value: Any = None) -> Expr:
        expr = Expr(op, "bool", False, start, end, args, value)
        return expr._replace(label=self._text(expr))

    def _list(self) -> Expr:
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
        return Expr("list", kind, False, start.col, end, value=frozenset(values))

    def _primary(self) -> Expr:
        tok = self._next()
        if tok.kind in ("number", "string"):
            kind = "number" if tok.kind == "number" else "str"
            expr = Expr("const", kind, False, tok.col, tok.end, value=tok.value)
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

    def _name(self, tok: Token) -> Expr:
        word = tok.text
        if word in _CONSTANTS:
            value = _CONSTANTS[word]
            return Expr("const", "none" if value is None else "bool", value is None, tok.col, tok.end, value=value)
        if word in VARIABLES:
            kind, nullable = VARIABLES[word]
            self.variables.add(word)
            return Expr("var", kind, nullable, tok.col, tok.end, value=word, label=word)
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

    def _call(self, tok: Token) -> Expr:
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
        return self._test("call", tuple(args), tok.col, close.end, tok.text)

    def _header(self, tok: Token, args: list[Expr], close: Token) -> Expr:
        if len(args) != 1 or args[0].kind != "str" or args[0].op != "const":
            raise self.error(self.line, tok.col, f"expected {FUNCTIONS['header']} with a quoted header name")
        name = args[0].value.lower()  # HTTP header names are case-insensitive; features look up lower case
        label = f'header("{name}")'
        self.variables.add(label)
        return Expr("header", "str", True, tok.col, close.end, value=name, label=label)


def _always_decides(stmt: Statement) -> bool:
    if isinstance(stmt, RouteStatement):
        return True
    if isinstance(stmt, PassStatement):
        return False
    return stmt.arms[-1].test is None and all(any(map(_always_decides, arm.body)) for arm in stmt.arms)


def _describe(tok: Token) -> str:
    return "end of line" if tok.kind == "end" else (tok.text if tok.kind == "string" else f"'{tok.text}'")


def _header(word: str) -> str:
    return "'else'" if word == "else" else "the condition"
