"""A signing-key error during a hot reload: a new config with a Responses route needs the deployment's signing
key, and its file may have become unreadable or garbled since the gateway started. The reload is refused like
an invalid file — the previous config keeps serving, the error is logged — and the file watch goes on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from dragoman.config.model import Config
from dragoman.config.reload import ConfigWatcher
from dragoman.runtime import Runtime
from dragoman.signing_key import SigningKeyError, signing_key
from tests.gateway import run_gateway
from tests.routing_helpers import KEYS_ENV, USER_HI, config_yaml, route, sdk, wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(20)

ROUTE = "gpt-5-via-gateway"


@pytest.fixture
def upstream_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS_ENV.items():
        monkeypatch.setenv(name, value)


def _chat_config(endpoint: str) -> str:
    return config_yaml([route(ROUTE, endpoint)], default_route=ROUTE)


def _with_responses_route(endpoint: str) -> str:
    responses = route("gpt-5-responses", "http://127.0.0.1:9/v1/responses")
    return config_yaml([route(ROUTE, endpoint), responses], default_route=ROUTE)


# ---- the signing key ----------------------------------------------------------------------------------------


def test_an_unreadable_or_binary_key_file_is_a_signing_key_error(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe" * 16)
    for path in (directory, binary):
        with pytest.raises(SigningKeyError, match=str(path)):
            signing_key({"DRAGOMAN_SIGNING_KEY_FILE": str(path)})


# ---- ConfigWatcher ------------------------------------------------------------------------------------------


def test_reload_whose_apply_raises_a_signing_key_error_keeps_the_old_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, upstream_keys: None
) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(_with_responses_route("http://127.0.0.1:9/v1/chat/completions"))
    key_dir = tmp_path / "signing.key"
    key_dir.mkdir()  # the key "file" cannot be read
    serving: list[Runtime] = []

    def apply(config: Config) -> None:
        # The server's apply: the whole runtime is built (a Responses dialect reads the key) before the swap.
        runtime = Runtime(config, client=None)  # type: ignore[arg-type] - no request goes upstream here
        serving.append(runtime)

    watcher = ConfigWatcher(str(path), apply)
    monkeypatch.setenv("DRAGOMAN_SIGNING_KEY", "")
    monkeypatch.setenv("DRAGOMAN_SIGNING_KEY_FILE", str(key_dir))
    with caplog.at_level(logging.ERROR, logger="dragoman.reload"):
        assert watcher.reload() is False
    assert serving == []
    assert any("reload failed" in r.getMessage() and str(key_dir) in r.getMessage() for r in caplog.records)

    monkeypatch.setenv("DRAGOMAN_SIGNING_KEY", "a team secret of at least 32 characters")  # the key is usable again: the same file applies
    assert watcher.reload() is True
    assert [route.name for route in serving[0].config.routes] == [ROUTE, "gpt-5-responses"]


def test_the_file_watch_survives_a_reload_that_fails_unexpectedly(tmp_path: Path, upstream_keys: None) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(_chat_config("http://127.0.0.1:9/v1/chat/completions"))
    applied: list[Config] = []

    async def scenario() -> None:
        done = asyncio.Event()

        def apply(config: Config) -> None:
            if not applied:
                applied.append(config)
                raise RuntimeError("a bug in apply")
            applied.append(config)
            done.set()

        watcher = ConfigWatcher(str(path), apply, poll=0.01)
        watcher.start()
        try:
            path.write_text(_chat_config("http://127.0.0.1:8/v1/chat/completions"))
            await asyncio.wait_for(_until(lambda: len(applied) == 1), 5)
            path.write_text(_chat_config("http://127.0.0.1:7/v1/chat/completions") + "# changed again\n")
            await asyncio.wait_for(done.wait(), 5)
        finally:
            watcher.stop()

    asyncio.run(scenario())
    assert len(applied) == 2


async def _until(condition) -> None:  # noqa: ANN001
    while not condition():
        await asyncio.sleep(0.01)


# ---- end to end ---------------------------------------------------------------------------------------------


def test_gateway_keeps_serving_when_a_reload_needs_an_unreadable_signing_key(tmp_path: Path) -> None:
    key_dir = tmp_path / "signing.key"
    key_dir.mkdir()
    env = {**KEYS_ENV, "DRAGOMAN_SIGNING_KEY": "", "DRAGOMAN_SIGNING_KEY_FILE": str(key_dir)}
    with ScriptedChatUpstream(ChatReply(text="from-u1")) as u1, ScriptedChatUpstream(ChatReply(text="from-u2")) as u2:
        with run_gateway(_chat_config(u1.chat_url), env=env) as gw, sdk(gw) as client:
            path = gw.stderr_path.parent / "dragoman.yaml"

            def answer() -> str:
                return client.messages.create(model=ROUTE, max_tokens=50, messages=USER_HI).content[0].text

            assert answer() == "from-u1"
            path.write_text(_with_responses_route(u2.chat_url))
            wait_until(lambda: "reload failed" in gw.stderr_text(), 5, "the reload error on stderr")
            assert str(key_dir) in gw.stderr_text()
            assert answer() == "from-u1"  # the previous config still serves
            assert gw.proc.poll() is None

            path.write_text(_chat_config(u2.chat_url))  # the watch goes on: a later valid file applies
            wait_until(lambda: answer() == "from-u2", 5, "the next valid config", step=0.1)
