"""The settings a running process takes only when it starts, and which of them a reload changed.

A hot reload swaps in routes, policies, keys, budgets, limits, the loop's switch, traffic shift and judge
(`loop.enabled`, `loop.shift`, `loop.judge`), `admin.keys`, who may scrape /metrics (`metrics.auth`,
`metrics.scrape_key_ref`) and three server limits at once (server.py
`apply_config`). The rest is built once per process: the audit store and its writer, metrics, tracing, the
loop's verdict checks (`loop.verdicts`: the Assessor) and rollback rule (`loop.rollback`: the config versions'
scores), the virtual-key cache (`governance.keys`), the rate-limit counters' backend, and the HTTP server's own
limits (uvicorn's, fixed when it started listening). A reload that changes one of those cannot apply
it; `needing_restart` names them so the reload says so, instead of seeming to have applied them."""

from __future__ import annotations

import msgspec

from dragoman.config.model import Config, ServerSettings

# Server settings a reload applies (read per request); every other server setting is uvicorn's, set at start.
RELOADED_SERVER = frozenset({"max_body_bytes", "cors_origins", "allowed_hosts"})
_SERVER_AT_START = tuple(f.name for f in msgspec.structs.fields(ServerSettings) if f.name not in RELOADED_SERVER)
_OBSERVE_AT_START = ("audit", "tracing")  # (admin.keys follow a reload)
# /metrics' access rules (auth, scrape_key_ref) are read per scrape, as admin.keys are: a reload applies them.
_METRICS_AT_START = ("enabled",)
_LIMITS_AT_START = ("backend", "redis_url", "timeout")  # the counters' backend and its connection
_LOOP_AT_START = ("verdicts", "rollback")  # server.py builds the Assessor, loop/versions.py its VersionScores, once


def needing_restart(running: Config, loaded: Config) -> list[str]:
    """The settings `loaded` changes from `running` that only a restart applies, as dotted config paths."""
    out = [name for name in _OBSERVE_AT_START if getattr(running.observe, name) != getattr(loaded.observe, name)]
    out += [f"metrics.{name}" for name in _METRICS_AT_START
            if getattr(running.observe.metrics, name) != getattr(loaded.observe.metrics, name)]
    out += [f"loop.{name}" for name in _LOOP_AT_START if getattr(running.loop, name) != getattr(loaded.loop, name)]
    out += [f"server.{name}" for name in _SERVER_AT_START
            if getattr(running.server, name) != getattr(loaded.server, name)]
    if running.governance.keys != loaded.governance.keys:
        out.append("governance.keys")
    out += [f"governance.limits.{name}" for name in _LIMITS_AT_START
            if getattr(running.governance.limits, name) != getattr(loaded.governance.limits, name)]
    return out
