"""The load-time checks of what the correctness loop's traffic shift acts on (README, "Traffic shift" and
"Prompt-prefix variants"): weighted `candidates:` routes, `prompt_prefixes:` variants, and `loop: shift:`.
Each refuses what it cannot act on at the file's line."""

from __future__ import annotations

import msgspec

from dragoman.config.loop import LoopSettings, ShiftSettings
from dragoman.config.model import PromptPrefix, RouteEntry, WeightedRoute
from dragoman.config.yaml_source import Path, Source

MAX_PREFIX_CHARS = 20_000  # a prefix is sent with every request of its variant: keep it a framing, not a prompt
# Keys that belong to a route with an upstream; a weighted route's candidates carry their own.
_UPSTREAM_ONLY = ("translation", "fallbacks", "retry", "breaker", "pricing", "prompt_prefixes")


def weighted_route(entry: RouteEntry, path: Path, names: list[str], weighted: set[str], src: Source) -> WeightedRoute:
    """A route written with `candidates:`: at least two distinct routes with an upstream, each weight > 0."""
    candidates = entry.candidates or ()
    if entry.upstream is not None:
        raise src.error(path + ("candidates",), "write either upstream: or candidates:, not both (a weighted route "
                        "picks among other routes, each with its own upstream)")
    for key in _UPSTREAM_ONLY:
        if src.has(path + (key,)):
            raise src.error(path + (key,), f"{key}: belongs to the candidates' own routes, not to a weighted route "
                            "(the chosen candidate's settings and fallbacks apply)")
    if len(candidates) < 2:
        raise src.error(path + ("candidates",), "a weighted route needs at least two candidates (with one, route to "
                        "it directly)")
    seen: set[str] = set()
    for j, cand in enumerate(candidates):
        where = path + ("candidates", j, "route")
        if cand.route not in names:
            raise src.error(where, f'no route named "{cand.route}"; routes: {", ".join(names)}')
        if cand.route in weighted:
            raise src.error(where, f'"{cand.route}" is itself a weighted route: candidates must be routes with an '
                            "upstream (weighted routes do not nest)")
        if cand.route in seen:
            raise src.error(where, f'"{cand.route}" is listed twice: give it one candidate entry with the summed weight')
        seen.add(cand.route)
    return WeightedRoute(name=entry.name, candidates=candidates)


def prompt_prefixes(variants: tuple[PromptPrefix, ...], api: str, path: Path, src: Source) -> tuple[PromptPrefix, ...]:
    """System-prompt prefix variants: translated routes only (a passthrough route forwards the client's prompt
    untouched), distinct non-empty names, bounded text."""
    if not variants:
        return ()
    where = path + ("prompt_prefixes",)
    if api == "messages":
        raise src.error(where, "prompt_prefixes apply to translated routes (chat, responses); a messages route passes "
                        "the client's request through untouched")
    seen: set[str] = set()
    for j, variant in enumerate(variants):
        name = variant.name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise src.error(where + (j, "name"), "a variant name must be 1 to 64 printable characters")
        if name in seen:
            raise src.error(where + (j, "name"), f'duplicate variant name "{name}"')
        seen.add(name)
        if len(variant.text) > MAX_PREFIX_CHARS:
            raise src.error(where + (j, "text"), f"a prefix may be at most {MAX_PREFIX_CHARS} characters")
    return tuple(PromptPrefix(name=v.name.strip(), text=v.text) for v in variants)


def loop_settings(settings: LoopSettings, src: Source) -> LoopSettings:
    """`loop: shift:` thresholds that could never act are refused: restoring must need a better score than
    demoting, each threshold must be one a score (0 to 1) can cross, a demotion must be probed, and a window must
    be able to hold the calls a decision needs."""
    shift = settings.shift
    where = ("loop", "shift")
    _thresholds(shift, where, src)
    # A default that a smaller written window cannot hold follows the window; a written one is refused.
    for name in ("min_calls", "variant_min_calls"):
        value = getattr(shift, name)
        if value <= shift.window:
            continue
        if src.has(where + (name,)):
            raise src.error(where + (name,), f"{name} ({value}) cannot exceed window ({shift.window}): the window "
                            "never holds that many calls")
        shift = msgspec.structs.replace(shift, **{name: shift.window})
    return msgspec.structs.replace(settings, shift=shift)


def _thresholds(shift: ShiftSettings, where: Path, src: Source) -> None:
    """A score is the mean of values from 0 to 1: it is never below 0 nor above 1, so `demote_below: 0` could never
    demote and `restore_above: 1` never restore; with shifting on and no probes, a demotion would last until a
    restart, as nothing would measure the candidate again."""
    if shift.demote_below <= 0:
        raise src.error(where + ("demote_below",), "demote_below must be above 0: a score is never below 0, so "
                        "nothing would be demoted (to never shift traffic, write enabled: false)")
    if shift.restore_above >= 1:
        raise src.error(where + ("restore_above",), "restore_above must be below 1: a score is never above 1, so "
                        "a demoted candidate would never be restored")
    if shift.restore_above <= shift.demote_below:
        raise src.error(where + ("restore_above",), f"restore_above ({shift.restore_above}) must be above "
                        f"demote_below ({shift.demote_below}), or a candidate would flap")
    if shift.enabled and shift.probe_share <= 0:
        raise src.error(where + ("probe_share",), "probe_share must be above 0 while shifting is enabled: without "
                        "probes a demoted candidate is never measured again, so never restored")
