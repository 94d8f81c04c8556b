"""A scripted OpenAI Chat Completions server on 127.0.0.1, for end-to-end tests.

`ScriptedChatUpstream` is a real aiohttp server running in its own thread and event loop, so plain
(sync) pytest tests and subprocess gateways can talk to it over real sockets. It records every request
and answers from a script: a list of replies served in order, one reply served to every request, or a
callable `(body) -> reply`. Every sleep it performs is capped and wakes up early on `reset()`/`stop()`,
so no scenario can hold a test (or the suite) hostage. A `Gate` lets a test hold a reply (`Held`) or a
stream's next chunk until it says so: tests wait on events, never on the clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from aiohttp import web

MAX_SLEEP = 30.0  # seconds; the upper bound of any single sleep the upstream performs
_START_TIMEOUT = 10.0


@dataclass
class ChatReply:
    """A well-formed completion: JSON when the request has `stream: false`, a realistic SSE chunk sequence otherwise.

    `tool_calls` holds `(id, name, arguments_json_str)`; `finish_reason` None means "tool_calls" when there are
    tool calls, else "stop"; `usage` is `(prompt_tokens, completion_tokens, cached_tokens)`.
    """

    text: str | None = None
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int, int] = (10, 5, 0)
    model: str = "gpt-x"
    chunk_delay: float = 0.0
    pieces: int = 4  # how many deltas each text, reasoning and argument string is split into
    headers: dict[str, str] = field(default_factory=dict)
    gate: "Gate | None" = None  # when set, the stream's chunk number `gate_before` waits until the test opens it
    gate_before: int = 1


@dataclass
class RawStream:
    """A hand-written SSE stream: each dict is sent as `data: <json>`, each bytes object verbatim.

    `data: [DONE]` is appended when `done` is true (and the stream was not cut). With `disconnect_after=N`
    the connection is closed abruptly after N chunks: no terminating chunk of the chunked encoding. With `gate`,
    chunk number `gate_before` (counting from 0) is sent only once the test opens the gate. With `hold_after=N`
    the stream waits after N chunks until `release()`, as a Hold does: the test decides when the rest comes
    (say, once its client has the first event).
    """

    chunks: list[Union[dict, bytes]]
    delay: float = 0.0
    disconnect_after: int | None = None
    hold_after: int | None = None
    done: bool = True
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    gate: "Gate | None" = None
    gate_before: int = 1


@dataclass
class ErrorReply:
    """An HTTP error with a JSON body, e.g. `ErrorReply(429, {"error": {...}}, {"retry-after": "7"})`."""

    status: int
    body: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    """Accept the request, then send nothing for `seconds` (capped); then serve `then`, or close the socket."""

    seconds: float
    then: "Reply | None" = None


class Gate:
    """A point a scripted reply waits at until the test calls `open()`. Thread-safe: the test runs in its own
    thread, the upstream in its event loop. `reached` is set once a reply is waiting at the gate."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._lock = threading.Lock()
        self._opened = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    def open(self) -> None:
        with self._lock:
            self._opened = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if not self._opened:
                self._waiters.append((asyncio.get_running_loop(), future))
        self.reached.set()
        if not self._opened:
            await future


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class Held:
    """Accept the request and send nothing until the test opens `gate` (at most MAX_SLEEP); then serve `then`,
    or close the socket. reset()/stop() close it too."""

    gate: Gate
    then: "Reply | None" = None


@dataclass
class Disconnect:
    """Close the socket without answering."""


@dataclass
class Hold:
    """Accept the request and answer nothing until `release()` (capped at MAX_SLEEP), then serve `then`, or close
    the socket. A client that hangs up meanwhile is counted in `hangups` (`wait_for_hangups(n)`): how a test sees
    that the gateway gave up its upstream call."""

    then: "Reply | None" = None


@dataclass
class Redirect:
    """A redirect to `location` (no body)."""

    location: str
    status: int = 307


@dataclass
class RawBody:
    """Any body with any content type and status, e.g. an HTML login page answering 200."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200


Reply = Union[ChatReply, RawStream, ErrorReply, Hang, Held, Disconnect, Hold, Redirect, RawBody]
Script = Union[Reply, list, Callable[[dict], Reply]]


@dataclass
class RecordedRequest:
    """One request as the upstream received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any  # parsed JSON, or None when the body was not JSON


def openai_error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    """An error body in OpenAI's shape."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class ScriptedChatUpstream:
    """OpenAI Chat Completions on 127.0.0.1:<ephemeral>, answering from a script and recording requests."""

    def __init__(self, script: Script | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.hangups = 0  # clients that closed their connection while a Hold held their request
        self._hangup = threading.Condition()
        self._arrived = threading.Condition()  # notified on each recorded request (wait_for_requests)
        self._release: asyncio.Event | None = None
        self._script_lock = threading.Lock()
        self._script: Script | None = None
        self._queue: list[Reply] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.script(script)
        self._start()

    # ---- public surface -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def bodies(self) -> list[Any]:
        """Parsed JSON bodies of the requests to this upstream's API path received so far."""
        return [r.body for r in self.requests if r.path.endswith(self.PATH_SUFFIX)]

    @property
    def last_body(self) -> Any:
        bodies = self.bodies
        assert bodies, f"the scripted upstream received no {self.PATH_SUFFIX} request"
        return bodies[-1]

    def script(self, script: Script | None) -> None:
        """Replace the script: a list (served in order), one reply (served always) or a callable."""
        with self._script_lock:
            self._script = script
            self._queue = list(script) if isinstance(script, (list, tuple)) else []

    def reset(self, script: Script | None = None) -> None:
        """Forget recorded requests and hang-ups, wake any hanging handler and install a new script."""
        self._wake_sleepers()
        self._on_loop(lambda: setattr(self, "_release", asyncio.Event()))
        self.requests.clear()
        with self._hangup:
            self.hangups = 0
        self.script(script)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least `n` requests have arrived (bounded by `timeout`)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= n, min(timeout, MAX_SLEEP)):
                raise AssertionError(f"expected {n} upstream requests, got {len(self.requests)}")
            return list(self.requests)

    def wait_for_hangups(self, n: int, timeout: float = 10.0) -> int:
        """Block until at least `n` held requests' clients have hung up (bounded by `timeout`)."""
        with self._hangup:
            if not self._hangup.wait_for(lambda: self.hangups >= n, min(timeout, MAX_SLEEP)):
                raise AssertionError(f"expected {n} hang-ups while holding, got {self.hangups}")
            return self.hangups

    def release(self) -> None:
        """Let every held request go on (a Hold to its `then`, a stream to its next chunk), and every request
        held from now on until `reset()`: a release can never come too early."""
        self._on_loop(lambda: self._release.set())  # type: ignore[union-attr]

    def stop(self) -> None:
        """Shut the server down and join its thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        loop, self._loop = self._loop, None
        self._wake_sleepers(loop)

        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "ScriptedChatUpstream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- server lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
                self._loop = loop
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="scripted-chat-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("scripted upstream did not start")
        if failure:
            raise failure[0]

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        self._release = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a handler learns that its client hung up (a Hold counts it), as real servers do.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False, access_log=None,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def _wake_sleepers(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        def swap() -> None:
            assert self._wake is not None
            self._wake.set()
            self._wake = asyncio.Event()

        self._on_loop(swap, loop)

    def _on_loop(self, fn: Callable[[], object], loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run `fn` on the server's loop and wait until it ran."""
        loop = loop or self._loop
        if loop is None:
            return
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (fn(), done.set()))
        done.wait(5)

    async def _hold(self) -> bool:
        """Wait for release() (True), or reset()/stop()/MAX_SLEEP (False); count a client hanging up meanwhile."""
        assert self._wake is not None and self._release is not None
        waits = [asyncio.ensure_future(self._release.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=MAX_SLEEP, return_when=asyncio.FIRST_COMPLETED)
            return waits[0].done()
        except asyncio.CancelledError:  # handler_cancellation: the client closed the connection
            with self._hangup:
                self.hangups += 1
                self._hangup.notify_all()
            raise
        finally:
            for wait in waits:
                wait.cancel()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep at most MAX_SLEEP; return False when woken early by reset()/stop()."""
        seconds = max(0.0, min(float(seconds), MAX_SLEEP))
        if seconds == 0:
            return True
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
            return False
        except asyncio.TimeoutError:
            return True

    async def _wait_gate(self, gate: Gate) -> bool:
        """Wait until the test opens `gate`; False when reset()/stop() or MAX_SLEEP came first."""
        assert self._wake is not None
        opened = asyncio.ensure_future(gate.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((opened, woken), timeout=MAX_SLEEP, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            woken.cancel()
        return opened.done() and not opened.cancelled()

    # ---- request handling -----------------------------------------------------------------------

    def _next_reply(self, body: Any) -> Reply:
        with self._script_lock:
            script = self._script
            if isinstance(script, (list, tuple)):
                if not self._queue:
                    return ErrorReply(500, openai_error("scripted upstream: script exhausted", "server_error"))
                return self._queue.pop(0)
        if script is None:
            return ErrorReply(500, openai_error("scripted upstream: no script installed", "server_error"))
        if callable(script):
            return script(body if isinstance(body, dict) else {})
        return script

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                raw=raw,
                body=body,
            )
        )
        with self._arrived:
            self._arrived.notify_all()
        if request.method != "POST" or not request.path.endswith(self.PATH_SUFFIX):
            return web.json_response(self._error_body("not_found", f"no route {request.method} {request.path}"), status=404)
        try:
            reply = self._next_reply(body)
        except Exception as exc:  # a broken callable script must show up in the test, not hang it
            return web.json_response(self._error_body("server", f"scripted upstream: script raised {exc!r}"), status=500)
        stream = isinstance(body, dict) and bool(body.get("stream"))
        return await self._serve_reply(request, reply, stream, stream and self._include_usage(body))

    # What differs between the scripted APIs: their path, their error body, whether a stream can carry usage.
    PATH_SUFFIX = "/chat/completions"

    def _error_body(self, kind: str, message: str) -> dict:
        return openai_error(message, "invalid_request_error" if kind == "not_found" else "server_error")

    def _include_usage(self, body: dict) -> bool:
        return bool((body.get("stream_options") or {}).get("include_usage"))

    async def _serve_reply(
        self, request: web.Request, reply: Reply, stream: bool, include_usage: bool
    ) -> web.StreamResponse:
        if isinstance(reply, Hang):
            woke_normally = await self._sleep(reply.seconds)
            if reply.then is not None and woke_normally:
                return await self._serve_reply(request, reply.then, stream, include_usage)
            return self._drop_connection(request)
        if isinstance(reply, Held):
            if await self._wait_gate(reply.gate) and reply.then is not None:
                return await self._serve_reply(request, reply.then, stream, include_usage)
            return self._drop_connection(request)
        if isinstance(reply, Disconnect):
            return self._drop_connection(request)
        if isinstance(reply, Hold):
            if await self._hold() and reply.then is not None:
                return await self._serve_reply(request, reply.then, stream, include_usage)
            return self._drop_connection(request)
        if isinstance(reply, Redirect):
            return web.Response(status=reply.status, headers={"Location": reply.location})
        if isinstance(reply, RawBody):
            return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type})
        if isinstance(reply, ErrorReply):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        if isinstance(reply, RawStream):
            return await self._send_stream(request, reply.chunks, reply.delay, reply.disconnect_after,
                                           reply.done, reply.status, reply.headers, reply.gate, reply.gate_before,
                                           reply.hold_after)
        if isinstance(reply, ChatReply):
            completion_id = f"chatcmpl-scripted-{next(self._ids)}"
            if not stream:
                return web.json_response(render_completion(reply, completion_id), headers=reply.headers)
            chunks = render_chunks(reply, completion_id, include_usage)
            return await self._send_stream(request, chunks, reply.chunk_delay, None, True, 200, reply.headers,
                                           reply.gate, reply.gate_before)
        raise TypeError(f"not a scripted reply: {reply!r}")

    async def _send_stream(
        self,
        request: web.Request,
        chunks: list,
        delay: float,
        disconnect_after: int | None,
        done: bool,
        status: int,
        headers: dict[str, str],
        gate: Gate | None = None,
        gate_before: int = 1,
        hold_after: int | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=status,
            headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **headers},
        )
        await response.prepare(request)
        for sent, chunk in enumerate(chunks):
            if disconnect_after is not None and sent >= disconnect_after:
                return self._drop_connection(request)
            if sent and delay and not await self._sleep(delay):
                return self._drop_connection(request)
            if gate is not None and sent == gate_before and not await self._wait_gate(gate):
                return self._drop_connection(request)
            if sent == hold_after and not await self._hold():
                return self._drop_connection(request)
            try:
                await response.write(_sse(chunk))
            except (ConnectionError, RuntimeError):
                return response  # the client went away; nothing left to do
        if disconnect_after is not None and disconnect_after <= len(chunks):
            return self._drop_connection(request)
        try:
            if done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    @staticmethod
    def _drop_connection(request: web.Request) -> web.StreamResponse:
        """Close the socket at once; aiohttp then has nothing to write to."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # aiohttp treats a cancelled handler on a closed transport as a client hang-up


def _sse(chunk: Union[dict, bytes, str]) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode()
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _split(text: str, pieces: int) -> list[str]:
    """Split `text` into up to `pieces` non-empty consecutive parts (their join is `text`)."""
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _usage(reply: ChatReply) -> dict:
    prompt, completion, cached = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _finish_reason(reply: ChatReply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


def render_completion(reply: ChatReply, completion_id: str = "chatcmpl-scripted") -> dict:
    """The non-streamed `chat.completion` object for `reply`."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in reply.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply),
        "system_fingerprint": "fp_scripted",
    }


def render_chunks(reply: ChatReply, completion_id: str = "chatcmpl-scripted", include_usage: bool = True) -> list[dict]:
    """The `chat.completion.chunk` sequence OpenAI would stream for `reply` (without `[DONE]`)."""
    created = int(time.time())

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_scripted",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    # OpenAI opens a text answer with content "" and a tool-only answer with content null.
    chunks = [chunk({"role": "assistant", "content": "" if reply.text and not reply.reasoning else None})]
    chunks += [chunk({"reasoning_content": part}) for part in _split(reply.reasoning or "", reply.pieces)]
    chunks += [chunk({"content": part}) for part in _split(reply.text or "", reply.pieces)]
    for index, (call_id, name, args) in enumerate(reply.tool_calls):
        opening = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(chunk({"tool_calls": [opening]}))
        chunks += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            for part in _split(args, reply.pieces)
        ]
    chunks.append(chunk({}, _finish_reason(reply)))
    if include_usage:
        chunks.append(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": reply.model,
                "system_fingerprint": "fp_scripted",
                "choices": [],
                "usage": _usage(reply),
            }
        )
    return chunks
