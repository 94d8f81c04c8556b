"""What the correctness loop costs per record, both halves together (loop/assess.py): `Assessor.examine` on the
event loop once the answer is out, `Assessor.assess` in the audit writer's thread, which shares the GIL with it.
Cases: a text answer, a streamed text answer, a tool-call answer checked against the 56 KB Claude Code request's
real tool schemas, a next turn whose tool_results join earlier calls in memory, and the bench's `tools` turn whole
(six calls checked, six results joined, assessed a writer's drain at a time). In-process and warm: inside the
serving process the same work costs two to three times this (bench/RESULTS.md, "Halving the loop's cost").

    python bench/bench_verdicts.py [-n 3000]

Prints µs per record (median of 5 runs); bench/RESULTS.md quotes a run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dragoman.loop.assess import Assessor  # noqa: E402
from dragoman.loop.evidence import Evidence, request_part  # noqa: E402
from dragoman.observe.record import AuditRecord  # noqa: E402
from dragoman.protocols import anthropic as A  # noqa: E402
from dragoman.translate.tool_names import ToolNameMap  # noqa: E402

DRAIN_CASE = "Claude Code turn: 6 calls checked, 6 results joined (drains of 64)"
DRAIN = 64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "claude_code", "claude_code_2.1.332_after_parallel_reads.json")


def _message(content: list[dict], stop: str) -> bytes:
    return json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": content,
                       "stop_reason": stop, "stop_sequence": None,
                       "usage": {"input_tokens": 10, "output_tokens": 40}}).encode()


def cases() -> dict[str, Callable[[int], Evidence]]:
    with open(FIXTURE, "rb") as f:
        request = f.read()
    body = json.loads(request)
    part = request_part(request)
    ids = part["results"].ids
    answered = [b for b in body["messages"][-2]["content"] if b["type"] == "tool_use"]  # the calls it answers
    text = _message([{"type": "text", "text": "word " * 40}], "end_turn")
    calls = _message([{"type": "text", "text": "Reading."}] + [
        {"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {"file_path": f"/p/{i}.py"}}
        for i in range(3)], "tool_use")
    chunk = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"word "}}\n\n')
    print(f"fixture: {len(request):,} B, {len(body['tools'])} tools, last message answers {len(ids)} calls")
    return {
        "text answer (JSON)": lambda i: Evidence(body=text, stop_reason="end_turn"),
        "text answer (stream, 60 chunks)": lambda i: Evidence(chunks=[chunk * 60], ended=True,
                                                              stop_reason="end_turn", stream_end="finished"),
        "3 tool calls checked against the request's schemas": lambda i: Evidence(
            offered=part["offered"], body=calls, stop_reason="tool_use", tool_names=ToolNameMap(64)),
        "next turn: tool_results joined in memory": lambda i: Evidence(
            body=text, stop_reason="end_turn", results=part["results"]),
        # The bench's `tools` scenario: the turn's six tool_results join the previous answer, whose six calls it
        # answers again (the same ids: each record's calls are remembered for the next), as translated blocks.
        DRAIN_CASE: lambda i: Evidence(
            **request_part(request), content=[A.ToolUseOut(id=b["id"], name=b["name"], input=dict(b["input"]))
                                               for b in answered],
            body=b"{}", stop_reason="tool_use", tool_names=ToolNameMap(64)),
    }, ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    built, ids = cases()
    from dragoman.loop.next_turn import Remembered

    for name, make in built.items():
        runs = []
        for _ in range(5):
            assessor = Assessor()
            evidence = [make(i) for i in range(args.n)]
            records = [AuditRecord(time=1.0, request_id=f"req_{i}") for i in range(args.n)]
            if name.startswith("next turn"):
                calls = list(reversed(ids))  # the first call answered last
                rows = [Remembered(f"req_old_{i}", 1.0, "r", "m", None, None, None, calls, ["Read"] * len(calls))
                        for i in range(args.n)]
            began = time.perf_counter()
            if name == DRAIN_CASE:  # as the gateway runs it: examined one by one, assessed a writer's drain at a time
                for at in range(0, args.n, DRAIN):
                    assessor.assess_drain([(records[i], assessor.examine(records[i], evidence[i]))
                                           for i in range(at, min(args.n, at + DRAIN))])
                runs.append((time.perf_counter() - began) / args.n * 1e6)
                continue
            for i in range(args.n):
                if name.startswith("next turn"):
                    assessor.memory.remember(rows[i])  # the earlier answer's calls, remembered
                assessor.assess(records[i], assessor.examine(records[i], evidence[i]))
            runs.append((time.perf_counter() - began) / args.n * 1e6)
        print(f"{name:52s} {statistics.median(runs):7.1f} µs/record")


if __name__ == "__main__":
    main()
