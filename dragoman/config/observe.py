"""The config blocks `observe/` reads (audit:, metrics:, tracing:, admin:), as msgspec Structs (unknown keys are
errors, like the rest of the file).

Defaults give the embedded setup: audit to SQLite in the user's data directory ($XDG_DATA_HOME/dragoman/dragoman.db,
else ~/.local/share/dragoman/dragoman.db), /metrics on, tracing off, no admin API.

```yaml
audit:
  store: sqlite:////var/lib/dragoman/audit.db   # or postgresql://user@host/db; unset: the user's data directory
  queue_size: 10000                  # records waiting for the store before new ones are dropped (and counted)
  batch: 64                          # records per insert transaction
  flush_interval: 0.5                # seconds: the longest a record waits before it is written
metrics:
  enabled: true                      # GET /metrics (Prometheus text format)
  auth: none                         # none: anyone who reaches the port may scrape; key: an admin or viewer key,
  scrape_key_ref: prometheus         #   or this scrape key (a secret reference, like api_key_ref; needs auth: key)
tracing:
  enabled: false
  otlp_endpoint: http://otel-collector:4318   # OTLP/HTTP; needs opentelemetry-exporter-otlp-proto-http
  capture_bodies: false              # translated request/response bodies on spans, secrets redacted
  service_name: dragoman
admin:
  keys: [adm-…]                      # GET /api/requests, /api/costs; none: the admin API answers 403
routes:
  - name: …
    pricing: {input: 1.25, cached_input: 0.125, output: 10}   # USD per million tokens; overrides the table
```
Environment: DRAGOMAN_AUDIT_STORE overrides `audit.store`; DRAGOMAN_ADMIN_KEYS (comma separated) adds admin keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class AuditSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    store: str | None = None  # None: the default store in the user's data directory (observe.stores)
    queue_size: _PositiveInt = 10_000
    batch: _PositiveInt = 64  # rows per transaction: the writer holds the GIL for a batch, so keep batches short
    flush_interval: _PositiveFloat = 0.5
    enabled: bool = True


METRICS_AUTH = ("none", "key")


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    # Who may scrape (config/load.py checks it; a reload applies it at once): "none" leaves /metrics open, as
    # Prometheus scrapers expect; "key" asks for an admin or viewer key, or the key `scrape_key_ref` names.
    auth: str = "none"
    scrape_key_ref: str | None = None


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = False
    otlp_endpoint: str | None = None
    capture_bodies: bool = False
    service_name: str = "dragoman"


class AdminSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"AdminSettings(keys=<{len(self.keys)} hidden>)"  # never print keys into logs


class ObserveSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The four top-level blocks together, for callers that want one object."""

    audit: AuditSettings = AuditSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    admin: AdminSettings = AdminSettings()

    def with_env(self, env: Mapping[str, str] | None = None) -> ObserveSettings:
        """Apply DRAGOMAN_AUDIT_STORE and DRAGOMAN_ADMIN_KEYS from the environment."""
        env = os.environ if env is None else env
        audit, admin = self.audit, self.admin
        if env.get("DRAGOMAN_AUDIT_STORE"):
            audit = msgspec.structs.replace(audit, store=env["DRAGOMAN_AUDIT_STORE"])
        extra = tuple(k.strip() for k in env.get("DRAGOMAN_ADMIN_KEYS", "").split(",") if k.strip())
        if extra:
            admin = AdminSettings(keys=admin.keys + tuple(k for k in extra if k not in admin.keys))
        return msgspec.structs.replace(self, audit=audit, admin=admin)
