"""Who may do what through the admin API: a viewer (by key or by session) reads and is refused every change; an
admin's session changes things only with its CSRF token. The admin API here is the real one, with one admin key
from `admin.keys` and a viewer key as the key store hands it over (tests/test_virtual_keys_* run the store)."""

from __future__ import annotations

import pytest

import asyncio

from dragoman import errors as E
from dragoman.admin_api import AdminApi, Services
from dragoman.govern.grant import Grant
from dragoman.key_table import KeyTable
from dragoman.ui.app import Dashboard
from dragoman.ui.auth import ADMIN, VIEWER, admin_key_id

SIGNING_KEY = b"s" * 32
VIEWER_KEYS = KeyTable({"view-1": Grant(key_id="v1", role=VIEWER)})


class ViewerAware(AdminApi):
    """The real admin API, its viewer key given as the key cache would give it."""

    async def authenticate(self, headers, api_keys=None):
        return await super().authenticate(headers, VIEWER_KEYS)

    def live_role(self, key_id: str):
        return VIEWER if key_id == "v1" else super().live_role(key_id)


def dashboard() -> Dashboard:
    return Dashboard(ViewerAware(Services(), ["adm-1"]), SIGNING_KEY)


def caller(board: Dashboard, scope: dict):
    return asyncio.run(board.api_caller(scope))


def scope(method: str, **headers: str) -> dict:
    return {"method": method, "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


def session_headers(board: Dashboard, key_id: str, role: str, csrf: bool = True) -> dict[str, str]:
    token, _ = board.signer.issue(key_id, role)
    out = {"cookie": f"dragoman_session={token}"}
    if csrf:
        out["x_csrf_token"] = board.signer.csrf(token)
    return out


def test_a_viewer_reads_by_key_or_session() -> None:
    board = dashboard()
    assert caller(board, scope("GET", x_api_key="view-1")).role == VIEWER
    assert caller(board, scope("GET", **session_headers(board, "v1", VIEWER, csrf=False))).role == VIEWER


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_viewer_changes_nothing(method: str) -> None:
    board = dashboard()
    with pytest.raises(E.PermissionDenied):
        caller(board, scope(method, x_api_key="view-1"))
    with pytest.raises(E.PermissionDenied):
        caller(board, scope(method, **session_headers(board, "v1", VIEWER)))


def test_an_admin_session_changes_things_only_with_its_csrf_token() -> None:
    board = dashboard()
    assert caller(board, scope("POST", **session_headers(board, admin_key_id("adm-1"), ADMIN))).role == ADMIN
    with pytest.raises(E.PermissionDenied):
        caller(board, scope("POST", **session_headers(board, admin_key_id("adm-1"), ADMIN, csrf=False)))
    assert caller(board, scope("POST", x_api_key="adm-1")).role == ADMIN


def test_a_session_whose_role_the_key_no_longer_has_is_refused() -> None:
    board = dashboard()
    with pytest.raises(E.AuthenticationFailed):
        caller(board, scope("GET", **session_headers(board, "v1", ADMIN)))
