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
`policy_syntax` tokenizes and parses it by hand into a checked tree; this module builds closures from it,
from a fixed set of operations.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from dragoman.policy.features import RequestFeatures
from dragoman.policy.syntax import (
    FUNCTIONS,
    TESTS,
    VARIABLES,
    Expr,
    IfStatement,
    PassStatement,
    RouteStatement,
    Statement,
    parse_rule,
)

__all__ = ["FUNCTIONS", "VARIABLES", "Decision", "Policy", "compile_policy"]

Test = Callable[[RequestFeatures], Any]
Run = Callable[[RequestFeatures], "Decision | None"]

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_STR_TESTS: dict[str, Callable[[str, str], bool]] = {
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": operator.contains,
}


class Decision(msgspec.Struct, frozen=True):
    """A policy's choice: the route, the policy that chose it, and the branch that fired (for logs)."""

    route: str
    policy: str
    branch: str


class Policy:
    """A compiled policy: `decide` runs closures built at compile time; `explain` replays them for a dry run."""

    def __init__(self, name: str, body: tuple[Statement, ...], variables: frozenset[str]) -> None:
        self.name = name
        self.variables = variables  # what decide() reads: feature names and header("…") calls
        self.body = body  # the checked tree, for dry runs and `dragoman check`
        self._run = _compile_block(body, name)

    def decide(self, features: RequestFeatures) -> Decision | None:
        """The route this policy picks for a request, or None (no decision: fall through)."""
        return self._run(features)

    def routes(self) -> tuple[str, ...]:
        """Every route the policy can name, in the order written."""
        names: dict[str, None] = {}
        _collect_routes(self.body, names)
        return tuple(names)

    def explain(self, features: RequestFeatures) -> list[str]:
        """A dry run: each condition evaluated, with its parts and the variables they read, then the outcome."""
        out: list[str] = []
        decision = _explain_block(self.body, features, out, "")
        out.append(f"=> route {decision.route} ({decision.branch})" if decision else "=> no decision (falls through)")
        return out


def compile_policy(
    name: str, rule: str, *, source: str = "<config>", first_line: int = 1, routes: Collection[str] | None = None
) -> Policy:
    """Compile rule text; a ConfigError locates any problem at `source:<absolute line>` (rule line 1 = first_line)."""
    body, variables = parse_rule(name, rule, source, first_line, routes)
    return Policy(name, body, variables)


# --- closures ----------------------------------------------------------------------------------------------


def _compile_expr(expr: Expr) -> Test:
    op, args = expr.op, expr.args
    if op == "const":
        value = expr.value
        return lambda f: value
    if op == "var":
        return operator.attrgetter(expr.value)
    if op == "header":
        name = expr.value
        return lambda f: f.header(name)
    if op in ("and", "or"):
        a, b = _compile_expr(args[0]), _compile_expr(args[1])
        return (lambda f: a(f) or b(f)) if op == "or" else (lambda f: a(f) and b(f))
    if op == "not":
        inner = _compile_expr(args[0])
        return lambda f: not inner(f)
    if op in _OPERATORS:
        return _compare_fn(_OPERATORS[op], args[0], args[1], guard_none=op in ("<", "<=", ">", ">="))
    if op in ("in", "not in"):
        get, values = _compile_expr(args[0]), args[1].value
        return (lambda f: get(f) not in values) if op == "not in" else (lambda f: get(f) in values)
    if op == "call":
        return _str_test(_STR_TESTS[expr.value], _compile_expr(args[0]), _compile_expr(args[1]))
    raise AssertionError(f"no closure for {op!r}")  # "list" only appears inside "in"


def _compare_fn(op: Callable[[Any, Any], bool], left: Expr, right: Expr, *, guard_none: bool) -> Test:
    # Specialised on a literal right side (the common `input_tokens < 8000`): one call fewer per test.
    get, other = _compile_expr(left), _compile_expr(right)
    guard = guard_none and (left.nullable or right.nullable)
    if right.op == "const" and not guard:
        value = right.value
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


def _compile_block(stmts: tuple[Statement, ...], policy: str) -> Run:
    runs = tuple(_compile_stmt(s, policy) for s in stmts if not isinstance(s, PassStatement))
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


def _compile_stmt(stmt: Statement, policy: str) -> Run:
    if isinstance(stmt, RouteStatement):
        decision = Decision(stmt.route, policy, stmt.branch)
        return lambda f: decision
    assert isinstance(stmt, IfStatement)
    arms = tuple((_compile_expr(arm.test), _compile_block(arm.body, policy)) for arm in stmt.arms if arm.test is not None)
    last = stmt.arms[-1]
    otherwise = _compile_block(last.body, policy) if last.test is None else _no_decision

    def run(f: RequestFeatures) -> Decision | None:
        for test, body in arms:
            if test(f):
                return body(f)  # a taken branch without a route falls through past the whole if
        return otherwise(f)

    return run


# --- dry runs ----------------------------------------------------------------------------------------------


def _collect_routes(stmts: tuple[Statement, ...], names: dict[str, None]) -> None:
    for stmt in stmts:
        if isinstance(stmt, RouteStatement):
            names[stmt.route] = None
        elif isinstance(stmt, IfStatement):
            for arm in stmt.arms:
                _collect_routes(arm.body, names)


def _explain_block(stmts: tuple[Statement, ...], f: RequestFeatures, out: list[str], pad: str) -> RouteStatement | None:
    for stmt in stmts:
        if isinstance(stmt, RouteStatement):
            out.append(f"{pad}rule line {stmt.line}: route {stmt.route}")
            return stmt
        if isinstance(stmt, PassStatement):
            out.append(f"{pad}rule line {stmt.line}: pass")
            continue
        for arm in stmt.arms:
            taken = arm.test is None or bool(_compile_expr(arm.test)(f))
            out.append(f"{pad}rule line {arm.line}: {arm.label}" + ("" if arm.test is None else f" -> {_show(taken)}"))
            tests = _tests(arm.test) if arm.test is not None else []
            for test in tests if len(tests) > 1 else ():
                values = _values(_reads(test), f)
                out.append(f"{pad}    {test.label} -> {_show(bool(_compile_expr(test)(f)))}" + (f"  ({values})" if values else ""))
            reads = _reads(arm.test) if arm.test is not None else []
            if len(tests) == 1 and reads:
                out[-1] += f"  ({_values(reads, f)})"
            if taken:
                decision = _explain_block(arm.body, f, out, pad + "  ")
                if decision is not None:
                    return decision
                break
    return None


def _tests(expr: Expr) -> list[Expr]:
    """The tests a condition is made of (comparisons, `in`, calls), joined by and / or / not."""
    if expr.op in TESTS:
        return [expr]
    if expr.op in ("and", "or", "not"):
        return [test for arg in expr.args for test in _tests(arg)]
    return []


def _reads(expr: Expr) -> list[Expr]:
    """The variables and headers an expression reads, in the order written."""
    if expr.op in ("var", "header"):
        return [expr]
    return [read for arg in expr.args for read in _reads(arg)]


def _values(reads: list[Expr], f: RequestFeatures) -> str:
    return ", ".join(f"{read.label} = {_show(_compile_expr(read)(f))}" for read in reads)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)
