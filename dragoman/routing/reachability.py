"""What `dragoman check` warns about in a valid config: policies that can never fire, branches that never run,
and routes that a request naming them never reaches because a policy always sends it elsewhere.

Conservative and cheap, over the checked policy tree: conditions are folded only when they are constant
(`true`, `not false`, `1 > 2`, ...), and applies_to patterns are compared only in the forms that are easy to
decide (equal, `*`, a literal name, `prefix*`). A warning is always right; silence proves nothing.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable
from typing import Any

from dragoman.config.governance import ungoverned_keys_warning
from dragoman.config.model import CompiledPolicy, Config
from dragoman.policy.syntax import Arm, Expr, IfStatement, PassStatement, RouteStatement, Statement
from dragoman.routing.router import applies

_FOLD: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_WILDCARDS = frozenset("*?[")


class _Reach:
    """What a policy can do: the routes some request can reach, whether every request gets a route, and the
    branches that never run."""

    def __init__(self) -> None:
        self.routes: dict[str, None] = {}  # in the order written
        self.always = False
        self.dead: list[tuple[Arm, str]] = []  # branches that never run, and why


def config_warnings(config: Config) -> list[str]:
    """Every warning for `config`, each starting with `file:line:` (governance rules no configured key reaches
    included: config.governance decides those)."""
    reach = [_reach(compiled) for compiled in config.policies]
    out: list[str] = []
    for i, compiled in enumerate(config.policies):
        out.extend(_policy_warnings(config, i, reach))
    out.extend(_shadowed_routes(config, reach))
    governance = ungoverned_keys_warning(config.governance, list(config.keys.values()), config.source, config.text)
    return out + ([governance] if governance else [])


def _policy_warnings(config: Config, i: int, reach: list[_Reach]) -> list[str]:
    compiled, found = config.policies[i], reach[i]
    where = f"{config.source}:{compiled.line}: policy {compiled.policy.name}"
    out = [f"{where}: rule line {arm.line}: `{arm.label}` never runs: {why}" for arm, why in found.dead]
    if not found.routes:
        out.append(f"{where} can never fire: no `route` in it is reachable")
        return out
    for j in range(i):
        earlier = config.policies[j]
        if reach[j].always and _covers(earlier.applies_to, compiled.applies_to):
            what = "every request" if earlier.applies_to is None else f"every name it applies to ({_names(compiled)})"
            out.append(f"{where} can never fire: policy {earlier.policy.name} (line {earlier.line}) comes first, "
                       f"applies to {what} and always routes")
            break
    return out


def _shadowed_routes(config: Config, reach: list[_Reach]) -> list[str]:
    """Routes that naming never reaches: the first policy for that name that always routes never picks it, nor
    does any policy before it."""
    out = []
    for route in config.routes:
        earlier: list[tuple[str, dict[str, None]]] = []  # the conditional policies before, and what they may pick
        for compiled, found in zip(config.policies, reach):
            if not applies(compiled, route.name):
                continue
            if not found.always:
                earlier.append((compiled.policy.name, found.routes))
                continue
            if route.name not in found.routes and all(route.name not in routes for _, routes in earlier):
                out.append(f"{config.source}:{compiled.line}: route {route.name} is shadowed: a request naming it "
                           f"never reaches it, {_routed_by(compiled.policy.name, found.routes, earlier)}; leave the "
                           f"name out of the policy's applies_to, or route to it from the policy")
            break
    return out


def _routed_by(name: str, routes: dict[str, None], earlier: list[tuple[str, dict[str, None]]]) -> str:
    # Each policy is credited only with the routes it can pick itself (the always-routing one decides the rest).
    said = f"policy {name} always routes it to {', '.join(routes)}"
    before = [f"policy {e} may route it to {', '.join(picks)}" for e, picks in earlier if picks]
    return said if not before else f"{said} (before it, {'; '.join(before)})"


# --- the policy tree -----------------------------------------------------------------------------------------


def _reach(compiled: CompiledPolicy) -> _Reach:
    found = _Reach()
    found.always = _block(compiled.policy.body, found)
    return found


def _block(stmts: tuple[Statement, ...], found: _Reach) -> bool:
    """Walk reachable statements, noting routes and dead arms; True when every request gets a route here."""
    for stmt in stmts:
        if isinstance(stmt, RouteStatement):
            found.routes[stmt.route] = None
            return True
        if isinstance(stmt, PassStatement):
            continue
        if _if(stmt, found):
            return True
    return False


def _if(stmt: IfStatement, found: _Reach) -> bool:
    # A taken arm whose body does not route falls through past the whole if (policy.py), so the if always
    # decides only when some arm is surely taken and every arm that can be taken routes.
    decides = True
    for i, arm in enumerate(stmt.arms):
        truth = True if arm.test is None else _fold(arm.test)
        if truth is False:
            found.dead.append((arm, "its condition is always false"))
            continue
        decides = _block(arm.body, found) and decides
        if truth is True:
            found.dead.extend((later, "an earlier condition is always true") for later in stmt.arms[i + 1:])
            return decides
    return False


def _fold(expr: Expr) -> Any:
    """The value of a constant expression, else None (not known before a request arrives)."""
    op, args = expr.op, expr.args
    if op == "const":
        return expr.value if isinstance(expr.value, bool) else None
    if op == "not":
        inner = _fold(args[0])
        return None if inner is None else not inner
    if op in ("and", "or"):
        a, b = _fold(args[0]), _fold(args[1])
        stop = op == "or"  # the value that decides alone: true for or, false for and
        if a is stop or b is stop:
            return stop
        return (not stop) if a is not None and b is not None else None
    if op in _FOLD and args[0].op == "const" and args[1].op == "const":
        left, right = args[0].value, args[1].value
        if op not in ("==", "!=") and (left is None or right is None):
            return False  # an ordering comparison with none is false (policy.py)
        return _FOLD[op](left, right)
    return None


# --- applies_to patterns -------------------------------------------------------------------------------------


def _covers(earlier: tuple[str, ...] | None, later: tuple[str, ...] | None) -> bool:
    """Whether every name `later` applies to is also one `earlier` applies to (None: every name)."""
    if earlier is None or "*" in earlier:
        return True
    if later is None:
        return False
    return all(any(_pattern_covers(p, q) for p in earlier) for q in later)


def _pattern_covers(p: str, q: str) -> bool:
    if p == q:
        return True
    if not _WILDCARDS.intersection(q):
        return fnmatch.fnmatchcase(q, p)  # q is one literal name
    prefix = p[:-1]
    return p.endswith("*") and not _WILDCARDS.intersection(prefix) and q.startswith(prefix)


def _names(compiled: CompiledPolicy) -> str:
    return ", ".join(compiled.applies_to or ("*",))
