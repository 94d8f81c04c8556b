"""Which JSON Schema validator the verdict checks use (loop/checks.py): fastjsonschema or jsonschema-rs.

Measures, on the tool schemas of the Claude Code fixtures (tests/fixtures/claude_code), the two costs a check
pays in the audit writer's thread: compiling a tool's input_schema (once per distinct schema: cached) and
validating one tool call's arguments (every call), for arguments that pass (the tool_use inputs the fixtures'
conversations hold) and arguments that fail (a required key dropped, a string made a number).

    python bench/bench_schema_validators.py [--repeat 5]

Prints per-library medians; bench/RESULTS.md quotes a run."""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import statistics
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixtures() -> tuple[dict[str, dict], list[tuple[str, dict]]]:
    """(schema by tool name, [(tool name, input)]) from every fixture conversation."""
    schemas: dict[str, dict] = {}
    calls: list[tuple[str, dict]] = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "claude_code", "*.json"))):
        with open(path) as f:
            body = json.load(f)
        for tool in body.get("tools") or []:
            schemas[tool["name"]] = tool["input_schema"]
        for message in body["messages"]:
            if isinstance(message["content"], list):
                calls += [(b["name"], b["input"]) for b in message["content"] if b.get("type") == "tool_use"]
    return schemas, [(name, args) for name, args in calls if name in schemas]


def broken(schema: dict, args: dict) -> dict | None:
    """`args` with its first required key dropped, or None when the schema requires nothing."""
    required = schema.get("required") or []
    if not required:
        return None
    out = copy.deepcopy(args)
    out.pop(required[0], None)
    return out


def compilers() -> dict[str, tuple[Callable[[dict], Any], Callable[[Any, dict], bool]]]:
    import fastjsonschema
    import jsonschema_rs

    def fjs_valid(validate: Any, value: dict) -> bool:
        try:
            validate(value)
            return True
        except fastjsonschema.JsonSchemaException:
            return False

    return {
        "fastjsonschema": (fastjsonschema.compile, fjs_valid),
        "jsonschema-rs": (jsonschema_rs.validator_for, lambda v, value: v.is_valid(value)),
    }


def timed(fn: Callable[[], Any], n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - began) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    schemas, calls = fixtures()
    bad = [(name, b) for name, a in calls if (b := broken(schemas[name], a)) is not None]
    print(f"{len(schemas)} tool schemas, {len(calls)} valid calls, {len(bad)} invalid calls")
    for lib, (compile_, valid) in compilers().items():
        compile_us, ok_us, bad_us = [], [], []
        for _ in range(args.repeat):
            began = time.perf_counter()
            compiled = {name: compile_(schema) for name, schema in schemas.items()}
            compile_us.append((time.perf_counter() - began) / len(schemas) * 1e6)
            assert all(valid(compiled[name], a) for name, a in calls), f"{lib}: a fixture call failed validation"
            assert not any(valid(compiled[name], b) for name, b in bad), f"{lib}: a broken call passed"
            ok_us.append(timed(lambda: [valid(compiled[n], a) for n, a in calls], 200) / len(calls) * 1e6)
            bad_us.append(timed(lambda: [valid(compiled[n], b) for n, b in bad], 200) / max(1, len(bad)) * 1e6)
        print(f"{lib:15s} compile {statistics.median(compile_us):9.1f} µs/schema   "
              f"validate ok {statistics.median(ok_us):6.2f} µs/call   "
              f"validate bad {statistics.median(bad_us):6.2f} µs/call")


if __name__ == "__main__":
    main()
