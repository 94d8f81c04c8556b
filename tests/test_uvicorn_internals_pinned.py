"""dragoman/http_protocol.py and dragoman/serving.py subclass uvicorn's httptools protocol, Server and multiprocess
supervisor, written against uvicorn 0.55.0: some methods are replaced (data_received, keep_subprocess_alive,
init_processes, handle_ttin, join_all) and the others wrapped. This fails when any uvicorn method they replace or
rely on changes, so an upgrade re-reads those first; the behaviour tests (limits, shutdown, workers) then say
whether the subclasses still hold. After re-reading, update the fingerprint here."""

from __future__ import annotations

import hashlib
import inspect

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from dragoman.http_protocol import LimitedHttpToolsProtocol
from dragoman.serving import _Process, _Server, _Supervisor

# sha256 of each uvicorn 0.55.0 source, first 16 hex digits
PINNED = {
    "HttpToolsProtocol.__init__": "4f08999410347141",
    "HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
    "HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    "HttpToolsProtocol.data_received": "010a7ae59a5d3b1a",
    "HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    "HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    "HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    "HttpToolsProtocol.on_response_complete": "64e254f28e389e76",
    "HttpToolsProtocol.shutdown": "d7351fa33f00d430",
    "RequestResponseCycle.receive": "8124ae006be71184",
    "FlowControl": "126debcdaa894c83",
    "Server.shutdown": "5d01b8b1f116a786",
    "Server.startup": "2aa1d70a244bfcf2",
    "Server.__init__": "c150b55284f7511e",
    "Process.server": "0bc0d378bdef89dd",
    "Process.__init__": "a8c85f799aae5b2c",
    "Process.is_ready": "d1f0d0cdfff16c49",
    "Multiprocess.__init__": "5e0f105cb4a381b5",
    "Multiprocess.run": "306814569fbd547b",
    "Multiprocess.init_processes": "6c69f2a36bf55750",
    "Multiprocess.keep_subprocess_alive": "3ba4980aa33bcecd",
    "Multiprocess.handle_ttin": "ebfc0650752a779d",
    "Multiprocess.join_all": "0a1cc752977298f9",
    "Multiprocess.handle_ttou": "7801be71de722e96",
}

SOURCES = {
    "HttpToolsProtocol.__init__": HttpToolsProtocol.__init__,
    "HttpToolsProtocol.connection_made": HttpToolsProtocol.connection_made,
    "HttpToolsProtocol.connection_lost": HttpToolsProtocol.connection_lost,
    "HttpToolsProtocol.data_received": HttpToolsProtocol.data_received,
    "HttpToolsProtocol.on_message_begin": HttpToolsProtocol.on_message_begin,
    "HttpToolsProtocol.on_headers_complete": HttpToolsProtocol.on_headers_complete,
    "HttpToolsProtocol.on_message_complete": HttpToolsProtocol.on_message_complete,
    "HttpToolsProtocol.on_response_complete": HttpToolsProtocol.on_response_complete,
    "HttpToolsProtocol.shutdown": HttpToolsProtocol.shutdown,
    "RequestResponseCycle.receive": RequestResponseCycle.receive,
    "FlowControl": FlowControl,
    "Server.shutdown": Server.shutdown,
    "Server.startup": Server.startup,
    "Server.__init__": Server.__init__,
    "Process.server": Process.server.fget,
    "Process.__init__": Process.__init__,
    "Process.is_ready": Process.is_ready,
    "Multiprocess.__init__": Multiprocess.__init__,
    "Multiprocess.run": Multiprocess.run,
    "Multiprocess.init_processes": Multiprocess.init_processes,
    "Multiprocess.keep_subprocess_alive": Multiprocess.keep_subprocess_alive,
    "Multiprocess.handle_ttin": Multiprocess.handle_ttin,
    "Multiprocess.join_all": Multiprocess.join_all,
    "Multiprocess.handle_ttou": Multiprocess.handle_ttou,
}


def test_the_uvicorn_code_our_subclasses_rely_on_is_unchanged() -> None:
    changed = [name for name, obj in SOURCES.items()
               if hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16] != PINNED[name]]
    assert not changed, (
        f"uvicorn changed {', '.join(changed)}: re-read them against dragoman/http_protocol.py and "
        "dragoman/serving.py, then update PINNED")


def test_the_subclasses_still_fit_their_bases() -> None:
    assert issubclass(LimitedHttpToolsProtocol, HttpToolsProtocol)
    assert issubclass(_Server, Server) and issubclass(_Process, Process) and issubclass(_Supervisor, Multiprocess)
    # what the subclasses call or read on uvicorn's objects
    for name in ("_unset_keepalive_if_required", "_should_upgrade", "handle_websocket_upgrade",
                 "_unsupported_upgrade_warning"):
        assert callable(getattr(HttpToolsProtocol, name)), name
