"""The optional judge: a route named in `loop.judge.route` scores a sampled share of finished calls for task
completion, asynchronously, within a budget; its verdict is a separate signal (a LateSignal judge_fail or
judge_pass, and the earlier call's `judge` column).

Nothing here delays a client. Whether a call is judged is drawn when its request arrives (`sampled`): a translated
stream's bytes are kept only for a call that may be judged. `offer` (on the event loop, after the answer was sent) is
a non-blocking put on a bounded queue; `concurrency` tasks take calls from it. A streamed answer is shown to the
judge as its blocks put back together (loop/answer.py `stream_content`), as a JSON one's are read from its body; a
stream that ended in an error or that the client stopped reading is not judged. A call that finds the queue full,
or the hour's calls or the day's dollars spent, or whose answer cannot be shown, is not judged and is counted
(dragoman_judge_dropped_total).
The calls-per-hour cap is exact in one process (a call is counted when it starts; each worker of `--workers N`
has its own caps); the dollar cap is checked before each call, so the calls in flight when it is reached (at most
`concurrency`) may pass it by their own cost. A call the gateway cannot price (no `pricing:` block on the route
that served it, and a model the built-in table does not know) counts at the table's highest prices, never as $0.
The budget outlives the Judge: a reload or a rollback that changes the judge's settings builds a new Judge, which
is handed the same Budget (correctness_loop.py), held to the new limits.

The judge's request goes through the gateway's own candidates (retries, breakers, fallbacks, translation to the
judge route's upstream): `send` is the face's (the loop does not import the exchange)."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from dragoman.config.loop import JudgeSettings
from dragoman.loop.answer import stream_content
from dragoman.loop.verdict import JUDGE_FAIL, LateSignal
from dragoman.observe.migrations import POSTGRES
from dragoman.observe.pricing import CEILING, cost_usd
from dragoman.observe.record import AuditRecord
from dragoman.protocols import anthropic as A
from dragoman.redaction import redact, redact_cut

log = logging.getLogger("dragoman.loop")

JUDGE_PASS = "judge_pass"
JUDGE_CALL = "judge_call"  # loop_events mark of the judge's own calls: never judged, never scored
MAX_TOKENS = 400
_PART = 6_000  # characters of each part of the evidence shown to the judge
_VERDICT = re.compile(r"^\W*(PASS|FAIL)\b[\W_]*(.*)", re.IGNORECASE | re.DOTALL)
_COLUMN_TRIES = 5  # the judged call's record may not be written yet: try the judge column again this often

SYSTEM = (
    "You grade whether an AI coding assistant's answer completes the user's task. You see the user's last turn, "
    "the tools the assistant could call, and the assistant's answer (its text and its tool calls). A tool call "
    "that is the right next step counts as progress. Answer with PASS or FAIL on the first line, then one short "
    "line saying why."
)

Send = Callable[[A.MessagesRequest], Awaitable[tuple[bytes, float | None]]]  # → the answer's body, its cost


_decode_request = msgspec.json.Decoder(A.MessagesRequest).decode


class _Billed(msgspec.Struct):
    usage: A.Usage | None = None


_decode_billed = msgspec.json.Decoder(_Billed).decode


class JudgeCall(msgspec.Struct, kw_only=True):
    """A finished call picked for judging, with what the judge is shown."""

    request_id: str
    route: str | None
    model: str | None
    shape: str | None
    prompt_variant: str | None
    config_version: str | None
    request: A.MessagesRequest
    answer: bytes  # the JSON answer, or the SSE bytes the client got (`streamed`)
    streamed: bool = False


class Budget:
    """Calls per sliding hour and dollars per UTC day; `clock` is injectable (epoch seconds). One per process,
    kept across Judges (`limit` sets a new Judge's limits on the spend so far)."""

    def __init__(self, settings: JudgeSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._starts: collections.deque[float] = collections.deque()
        self._day = -1
        self._spent = 0.0
        self.unpriced_logged = False  # an unpriced call is logged once per process, not once per call

    def limit(self, settings: JudgeSettings) -> None:
        """The limits of new judge settings, applied to the calls and dollars already spent."""
        self.settings = settings

    def take(self) -> str | None:
        """Count a call about to start, or the reason it may not: calls_per_hour | usd_per_day."""
        now = self.clock()
        while self._starts and self._starts[0] <= now - 3600:
            self._starts.popleft()
        if len(self._starts) >= self.settings.max_calls_per_hour:
            return "calls_per_hour"
        if self._today(now) and self._spent >= self.settings.max_usd_per_day:
            return "usd_per_day"
        self._starts.append(now)
        return None

    def spend(self, usd: float) -> None:
        now = self.clock()
        self._today(now)
        self._spent += usd

    def _today(self, now: float) -> bool:
        day = int(now // 86400)
        if day != self._day:
            self._day, self._spent = day, 0.0
            return False
        return True


class Judge:
    """Samples finished calls and has the judge route score them."""

    def __init__(
        self,
        settings: JudgeSettings,
        send: Send,
        report: Callable[[LateSignal], None],
        *,
        store: Any = None,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        budget: Budget | None = None,
    ) -> None:
        self.settings = settings
        self.send = send
        self.report = report  # Assessor.report_late
        self.store = store  # where the judged call's `judge` column is set
        self.metrics = metrics
        self.budget = budget if budget is not None else Budget(settings, clock)
        self.clock = clock
        self.draw = draw
        self.dropped: collections.Counter[str] = collections.Counter()
        self.judged = 0
        self._queue: asyncio.Queue[JudgeCall] = asyncio.Queue(settings.queue)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self.settings.concurrency)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def sampled(self) -> bool:
        """Whether a call arriving now is to be judged once answered: drawn once per request, before its answer, so
        that a streamed one's bytes are kept for the judge only when it is."""
        return self.draw() < self.settings.sample

    def offer(self, record: AuditRecord, body: bytes | None, answer: bytes | None, *, streamed: bool = False) -> None:
        """A sampled call finished: judge it if it was answered (`body`: the request as the client sent it; `answer`:
        the JSON answer, or the SSE bytes the client got when `streamed`), its stream not ended by an error."""
        if body is None or not answer or record.status != 200 or record.error_type is not None:
            return
        try:
            request = _decode_request(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        call = JudgeCall(request_id=record.request_id, route=record.route, model=record.upstream_model,
                         shape=record.shape, prompt_variant=record.prompt_variant,
                         config_version=record.config_version, request=request, answer=answer, streamed=streamed)
        try:
            self._queue.put_nowait(call)
        except asyncio.QueueFull:
            self._dropped("queue")

    async def _work(self) -> None:
        while True:
            call = await self._queue.get()
            try:
                await self.judge(call)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad call must not end the worker
                # No traceback: its text may carry an upstream's words, which reach a log only redacted.
                log.error("judging %s failed: %s: %s", call.request_id, type(exc).__name__, redact(str(exc)))

    async def judge(self, call: JudgeCall) -> str | None:
        """Judge one call: "pass", "fail", or None (not judged: over budget, upstream error, unclear answer)."""
        try:
            request = judge_request(call, self.settings.route or "")
        except Exception:  # noqa: BLE001 - an answer the judge cannot be shown (arguments nested too deep) costs no call
            self._dropped("unreadable")
            return None
        refused = self.budget.take()
        if refused is not None:
            self._dropped(refused)
            return None
        try:
            body, cost = await self.send(request)
        except Exception as err:  # noqa: BLE001 - the judge route failing says nothing about the call
            log.warning("judge route %s failed for %s: %s", self.settings.route, call.request_id, redact(str(err)))
            self._count("error")
            return None
        self.budget.spend(cost if cost is not None else self._unpriced(body, request))
        verdict, why = parse_verdict(_answer_text(body))
        self._count(verdict or "unclear")
        if verdict is None:
            return None
        self.judged += 1
        self.report(LateSignal(request_id=call.request_id, kind=JUDGE_FAIL if verdict == "fail" else JUDGE_PASS,
                               time=self.clock(), route=call.route, model=call.model, shape=call.shape,
                               prompt_variant=call.prompt_variant, config_version=call.config_version,
                               detail=redact_cut(why, 300) or None))
        if self.store is not None:
            await self._set_column(call.request_id, verdict)
        return verdict

    def _unpriced(self, body: bytes, request: A.MessagesRequest) -> float:
        """What a call without a price counts against max_usd_per_day: its tokens (the answer's usage, or, without
        one, the request's bytes and the most it may answer) at the built-in table's highest prices. As $0 it would
        leave the cap unreachable."""
        usage = _usage(body) or A.Usage(input_tokens=len(msgspec.json.encode(request)), output_tokens=MAX_TOKENS)
        bound = cost_usd(None, usage, CEILING) or 0.0
        if not self.budget.unpriced_logged:
            self.budget.unpriced_logged = True
            log.warning("a call to the judge route %s has no price (neither a pricing: block on the route that "
                        "served it nor a known model): max_usd_per_day counts such calls at the highest built-in "
                        "price ($%.4f for this one); give the route a pricing: block to count them exactly",
                        self.settings.route, bound)
        return bound

    async def _set_column(self, request_id: str, verdict: str) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_COLUMN_TRIES):
            try:
                if await loop.run_in_executor(None, set_judge_column, self.store, request_id, verdict):
                    return
            except Exception as err:  # noqa: BLE001 - the store is down: the signal went out anyway
                log.warning("cannot set the judge column of %s: %s", request_id, redact(str(err)))
                return
            await asyncio.sleep(1.0)  # its record is still in the audit writer's queue (flushed every 0.5 s)

    def _dropped(self, reason: str) -> None:
        self.dropped[reason] += 1
        if self.metrics is not None:
            self.metrics.judge_dropped(reason)

    def _count(self, verdict: str) -> None:
        if self.metrics is not None:
            self.metrics.judge_verdict(verdict)


def judge_request(call: JudgeCall, route: str) -> A.MessagesRequest:
    """The Messages request the judge route gets for one call."""
    tools = ", ".join(tool.name for tool in call.request.tools or ()) or "(none)"
    text = (f"<user_turn>\n{_clip(_last_user_turn(call.request))}\n</user_turn>\n"
            f"<tools_offered>{_clip(tools)}</tools_offered>\n"
            f"<answer>\n{_clip(_content_text(_answer_content(call), tool_calls=True))}\n</answer>")
    return A.MessagesRequest(model=route, max_tokens=MAX_TOKENS, system=SYSTEM, stream=False,
                             messages=[A.Message(role="user", content=text)])


def parse_verdict(text: str) -> tuple[str | None, str]:
    """("pass" | "fail" | None, the reason) from the judge's answer: PASS or FAIL first, then why."""
    match = _VERDICT.match(text.strip())
    if match is None:
        return None, text.strip()[:300]
    return match.group(1).lower(), " ".join(match.group(2).split())


def set_judge_column(store: Any, request_id: str, verdict: str) -> bool:
    """Set the judged call's `judge` column; False while its record is not written yet."""
    ph = "%s" if store.dialect == POSTGRES else "?"
    cursor = store.run(lambda conn: conn.execute(f"UPDATE requests SET judge = {ph} WHERE request_id = {ph}",
                                                 (verdict, request_id)))
    return bool(cursor.rowcount)


def _last_user_turn(req: A.MessagesRequest) -> str:
    for message in reversed(req.messages):
        if message.role == "user":
            return _blocks_text(message.content)
    return ""


def _blocks_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if block.type == "text" and block.text:
            parts.append(block.text)
        elif block.type == "tool_result":
            parts.append(f"[tool result{' (error)' if block.is_error else ''}] {_blocks_text(block.content)}")
    return "\n".join(parts)


def _answer_content(call: JudgeCall) -> Any:
    """The judged answer's content blocks (dicts, as a JSON answer's body carries them)."""
    return stream_content(call.answer) if call.streamed else _json_content(call.answer)


def _answer_text(body: bytes) -> str:
    """The text of a JSON answer (the judge route's)."""
    return _content_text(_json_content(body), tool_calls=False)


def _usage(body: bytes) -> A.Usage | None:
    """The token counts of a JSON answer (the judge route's), if it says."""
    try:
        return _decode_billed(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _json_content(body: bytes) -> Any:
    try:
        answer = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):  # (RecursionError: the judge route's answer nested too deep)
        return ()
    return answer.get("content") or () if isinstance(answer, dict) else ()


def _content_text(content: Any, *, tool_calls: bool) -> str:
    parts = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
        elif tool_calls and block.get("type") == "tool_use":
            parts.append(f"[tool call] {block.get('name')}({msgspec.json.encode(block.get('input')).decode()})")
    return "\n".join(parts)


def _clip(text: str) -> str:
    return text if len(text) <= _PART else text[:_PART] + " […]"
