"""A thinking signature the gateway did not seal with its key (tampered with, its MAC altered, Anthropic's own, or
forged with the empty key a half-written key file would give) never sends a reasoning item upstream, and the
turn still succeeds without it."""

from __future__ import annotations

import contextlib
import json

import pytest

from dragoman.translate.reasoning_signature import seal
from tests.gateway import gateway_config, run_gateway
from tests.responses_helpers import assert_not_replayed, signing_env, turn_1, turn_2
from tests.routing_helpers import sdk

pytestmark = pytest.mark.timeout(30)

# What a real Anthropic model's thinking signature looks like: not ours, so never replayed upstream.
ANTHROPIC_SIGNATURE = (
    "EqQBCkYIBxgCKkDd8cQ0Fh1Uo6mYkGqj0cYb5b3yV9rjQXh6B0tVQ3dO9jAPmGqN3xJ1a2E0dP1c9s7m4Z2yHq8pXw3nK5sLc0VpEgxF"
    "Kz3q8r6T1v0Y2wUaDHjL9xq2pQ7mN4sR1yIwL0a8cB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3kL5mN7pQ9rS1tU3v"
)


def test_tampered_signature_is_not_replayed_and_the_turn_succeeds(responses_client, responses_upstream):
    content = [b.model_dump() for b in turn_1(responses_client, responses_upstream, True).content]
    signature = content[0]["signature"]
    middle = len(signature) // 2
    content[0]["signature"] = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1:]
    assert_not_replayed(turn_2(responses_client, responses_upstream, content, False))


def test_signature_with_altered_mac_is_not_replayed(responses_client, responses_upstream):
    content = [b.model_dump() for b in turn_1(responses_client, responses_upstream, False).content]
    signature = content[0]["signature"]
    content[0]["signature"] = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert_not_replayed(turn_2(responses_client, responses_upstream, content, True))


def test_foreign_anthropic_signature_is_not_replayed_and_the_turn_succeeds(responses_client, responses_upstream):
    content = [{"type": "thinking", "thinking": "Claude's own thoughts.", "signature": ANTHROPIC_SIGNATURE},
               {"type": "tool_use", "id": "call_rt_A_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {"file_path": "/p/a.txt"}},
               {"type": "tool_use", "id": "call_rt_B_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {"file_path": "/p/b.txt"}}]
    sent = turn_2(responses_client, responses_upstream, content, True)
    assert_not_replayed(sent)
    assert "Claude's own thoughts." not in json.dumps(sent)


def test_an_empty_key_file_never_becomes_an_empty_signing_key(responses_upstream, tmp_path):
    # What a worker sees when another worker has just created the key file (O_EXCL) but not yet written it.
    # Signing with that empty key would let any client forge signatures, and other workers could not open them.
    empty = tmp_path / "signing.key"
    empty.write_text("")
    empty.chmod(0o600)
    forged_item = {"type": "reasoning", "summary": [], "id": "rs_forged", "encrypted_content": "enc-forged-by-client"}
    forged = seal(json.dumps(forged_item).encode(), b"")
    content = [{"type": "thinking", "thinking": "", "signature": forged},
               {"type": "tool_use", "id": "call_rt_A_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {"file_path": "/p/a.txt"}},
               {"type": "tool_use", "id": "call_rt_B_Qm7tRz4kLp2Vw8Nf", "name": "Read", "input": {"file_path": "/p/b.txt"}}]
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(run_gateway(gateway_config(responses_upstream.responses_url),
                                                      env=signing_env(empty)))
        except RuntimeError:
            return  # refusing to start without a usable key is a correct answer too
        with sdk(running, timeout=20) as client:
            sent = turn_2(client, responses_upstream, content, False)
    assert "enc-forged-by-client" not in json.dumps(sent), (
        "a signature forged with an empty key was accepted: the gateway signs with b'' when the key file is empty")

