"""Model name -> Route: the policies that apply to the name, in config order (the first that routes wins, and
the route it picks is final: never re-evaluated); else the exact route name, then model_routes patterns (first
match wins), then default_route."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import TypeVar

from dragoman.config.model import CompiledPolicy, Config, Route, WeightedRoute
from dragoman.errors import ConfigError, NotFound
from dragoman.policy.features import RequestFeatures
from dragoman.policy.language import Policy
from dragoman.protocols.anthropic import MAX_MODEL_CHARS

# Clients send a handful of model names; the bound only stops a client cycling names from growing memory.
_CACHE_SIZE = 1024
# Only names this short are cached, so each cache holds at most _CACHE_SIZE names of at most _CACHED_CHARS
# characters (under 1 MiB) whoever calls: requests naming longer models are refused at decode (a 400), but a
# Router is also driven by hand (dry runs, tests), and an uncached name is merely resolved again.
_CACHED_CHARS = MAX_MODEL_CHARS
_V = TypeVar("_V")


class RouteDecision:
    """The route a request goes to, and the policy and branch that chose it (None: plain name routing)."""

    __slots__ = ("route", "policy", "branch")

    def __init__(self, route: Route | WeightedRoute, policy: str | None = None, branch: str | None = None) -> None:
        self.route = route
        self.policy = policy
        self.branch = branch


class Router:
    """Resolves requested model names to Routes; built once per Config, with resolutions cached."""

    def __init__(self, config: Config, *, cache_size: int = _CACHE_SIZE) -> None:
        self._routes: tuple[Route | WeightedRoute, ...] = config.routes + config.weighted
        # A weighted route (candidates:) is named like any route; the exchange picks its candidate per request.
        self._by_name: dict[str, Route | WeightedRoute] = {route.name: route for route in config.routes}
        self._by_name.update((w.name, w) for w in config.weighted)
        self._patterns: tuple[tuple[Callable[[str], object], Route | WeightedRoute], ...] = tuple(
            (re.compile(fnmatch.translate(rule.match)).match, self._named(rule.route)) for rule in config.model_routes
        )
        self._default = None if config.default_route is None else self._named(config.default_route)
        self._cache: dict[str, Route | WeightedRoute] = {}
        self._cache_size = cache_size
        self._policies = config.policies
        self._applicable: dict[str, tuple[Policy, ...]] = {}

    def decide(self, model: str, features: Callable[[], RequestFeatures]) -> RouteDecision:
        """Policies that apply to `model` first, in config order (the first that routes wins); then resolve().
        `features` is called only when some policy applies, so plain routing never pays for it."""
        policies = self._applicable.get(model)
        if policies is None:
            policies = self._policies_for(model)
        if policies:
            found = features()
            for policy in policies:
                decision = policy.decide(found)
                if decision is not None:
                    return RouteDecision(self._by_name[decision.route], decision.policy, decision.branch)
        return RouteDecision(self.resolve(model))

    def _policies_for(self, model: str) -> tuple[Policy, ...]:
        # Route names are no exception: a policy without applies_to applies to every request (the guide's
        # cost_aware_routing routes requests that name gpt-5-via-gateway), one with applies_to to what it matches.
        found = tuple(p.policy for p in self._policies if applies(p, model))
        _remember(self._applicable, model, found, self._cache_size)
        return found

    def resolve(self, model: str) -> Route | WeightedRoute:
        """The Route for a requested model name; NotFound (naming the routes that exist) when nothing matches."""
        route = self._cache.get(model)
        if route is None:
            route = self._match(model)
            _remember(self._cache, model, route, self._cache_size)
        return route

    def routes(self) -> tuple[Route | WeightedRoute, ...]:
        """All routes, weighted ones last (what GET /v1/models lists)."""
        return self._routes

    def _match(self, model: str) -> Route | WeightedRoute:
        route = self._by_name.get(model)
        if route is not None:
            return route
        for matches, target in self._patterns:
            if matches(model):
                return target
        if self._default is not None:
            return self._default
        names = ", ".join(self._by_name)
        raise NotFound(f'model "{model}" matches no route; routes: {names}')

    def _named(self, name: str) -> Route | WeightedRoute:
        # load_config already checks references; this guards Configs built by hand.
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f'no route named "{name}"; routes: {", ".join(self._by_name)}') from None


def _remember(cache: dict[str, _V], model: str, value: _V, size: int) -> None:
    """Cache `value` under `model`, unless the name is too long to keep (then it is resolved again each time)."""
    if len(model) > _CACHED_CHARS:
        return
    if len(cache) >= size:
        cache.clear()  # cheaper than LRU bookkeeping on every hit, and the working set refills at once
    cache[model] = value


def applies(policy: CompiledPolicy, model: str) -> bool:
    """Whether `policy` is evaluated for a request naming `model`."""
    patterns = policy.applies_to
    return patterns is None or any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)
