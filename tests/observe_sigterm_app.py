"""A minimal ASGI app wired like the gateway (Observability started in lifespan startup, closed in lifespan
shutdown, a record submitted after each response's last byte) for the SIGTERM test. DB path: $AUDIT_DB."""

from __future__ import annotations

import asyncio
import os
import time

from dragoman.config.observe import AuditSettings, ObserveSettings
from dragoman.observe.record import AuditRecord
from dragoman.observe.runtime import Observability


class App:
    def __init__(self) -> None:
        # A long flush interval, so most records are still queued when SIGTERM arrives.
        audit = AuditSettings(store="sqlite:///" + os.environ["AUDIT_DB"], flush_interval=30.0)
        self.observe = Observability(ObserveSettings(audit=audit))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await asyncio.get_running_loop().run_in_executor(None, self.observe.start)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.observe.aclose(10)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        started = time.time()
        request_id = dict(scope["headers"]).get(b"x-request-id", b"req_none").decode()
        await asyncio.sleep(0.2)  # an upstream call in flight
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": request_id.encode()})
        self.observe.record(AuditRecord(time=started, request_id=request_id, route="r", status=200,
                                        latency_total_ms=(time.time() - started) * 1000))


app = App()
