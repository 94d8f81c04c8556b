"""Micro-benchmark (not a test): what translating a Claude Code request costs, Chat and Responses.

    python bench/bench_request_translation.py [--repeats N] [fixture.json]

Translates one recorded Claude Code request (default: the largest in tests/fixtures/claude_code/, decoded
beforehand) 200 times per sample and prints the median cost of one translation: the conversation walk, the
tools, the settings, as the dialects call `translate_request` once per request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dragoman.protocols import anthropic as A  # noqa: E402
from dragoman.translate.chat.request import translate_request as chat_request  # noqa: E402
from dragoman.translate.options import TranslationOptions  # noqa: E402
from dragoman.translate.request_context import RequestContext  # noqa: E402
from dragoman.translate.responses.request import translate_request as responses_request  # noqa: E402
from dragoman.translate.tool_names import ToolNameMap  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "claude_code"
PER_SAMPLE = 200


def _median_us(run: Callable[[], object], repeats: int) -> float:
    for _ in range(PER_SAMPLE):  # warm up
        run()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter_ns()
        for _ in range(PER_SAMPLE):
            run()
        samples.append((time.perf_counter_ns() - began) / PER_SAMPLE / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("fixture", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    path = args.fixture or max(FIXTURES.glob("*.json"), key=lambda p: p.stat().st_size)
    req = msgspec.json.decode(path.read_bytes(), type=A.MessagesRequest)
    options = TranslationOptions()

    def ctx() -> RequestContext:
        return RequestContext(message_id="msg_bench", requested_model=req.model, tool_names=ToolNameMap(64))

    rows = {
        "chat": lambda: chat_request(req, "gpt-4.1", options, ctx()),
        "responses": lambda: responses_request(req, "gpt-5", options, ctx(), reasoning_key=b"bench-key"),
    }
    print(f"{path.name} ({path.stat().st_size // 1024} KB, {len(req.messages)} messages, {len(req.tools or ())} tools)")
    print(f"{'protocol':<20}{'us per request (median of ' + str(args.repeats) + ')':>40}")
    for name, run in rows.items():
        print(f"{name:<20}{_median_us(run, args.repeats):>40.1f}")


if __name__ == "__main__":
    main()
