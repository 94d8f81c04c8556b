"""A tiny OTLP/HTTP traces receiver on 127.0.0.1 for end-to-end tests: each export's body (gunzipped) and
headers go to a callback, which decodes as much as its test needs."""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OnExport = Callable[[bytes, dict[str, str]], None]


@contextlib.contextmanager
def otlp_receiver(on_export: OnExport) -> Iterator[int]:
    """Serve POST /v1/traces on a free port (yielded); `on_export(body, lower-cased headers)` per export."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                data = gzip.decompress(data)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            on_export(data, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
