"""Who may do what through the admin API: a viewer (by key or by session) reads and is refused every change; an
admin's session changes things only with its CSRF token. Keys here come from a stand-in for the key store, the
way `Keys.caller_for_key` will map virtual keys once they land."""

from __future__ import annotations

import pytest

from dragoman import errors as E
from dragoman.ui.app import Dashboard
from dragoman.ui.auth import ADMIN, VIEWER, Caller, Keys

SIGNING_KEY = b"s" * 32


class TwoRoles(Keys):
    """An admin key and a viewer key, as the key store will provide them."""

    def __init__(self) -> None:
        super().__init__(["adm-1"])

    def caller_for_key(self, presented: str) -> Caller | None:
        return {"adm-1": Caller(key_id="a1", role=ADMIN), "view-1": Caller(key_id="v1", role=VIEWER)}.get(presented)

    def key_id_live(self, key_id: str, role: str) -> bool:
        return (key_id, role) in (("a1", ADMIN), ("v1", VIEWER))


def dashboard() -> Dashboard:
    board = Dashboard(["adm-1"], SIGNING_KEY)
    board.keys = TwoRoles()
    return board


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
    assert board.api_caller(scope("GET", x_api_key="view-1")).role == VIEWER
    assert board.api_caller(scope("GET", **session_headers(board, "v1", VIEWER, csrf=False))).role == VIEWER


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_viewer_changes_nothing(method: str) -> None:
    board = dashboard()
    with pytest.raises(E.PermissionDenied):
        board.api_caller(scope(method, x_api_key="view-1"))
    with pytest.raises(E.PermissionDenied):
        board.api_caller(scope(method, **session_headers(board, "v1", VIEWER)))


def test_an_admin_session_changes_things_only_with_its_csrf_token() -> None:
    board = dashboard()
    assert board.api_caller(scope("POST", **session_headers(board, "a1", ADMIN))).role == ADMIN
    with pytest.raises(E.PermissionDenied):
        board.api_caller(scope("POST", **session_headers(board, "a1", ADMIN, csrf=False)))
    assert board.api_caller(scope("POST", x_api_key="adm-1")).role == ADMIN


def test_a_session_whose_role_the_key_no_longer_has_is_refused() -> None:
    board = dashboard()
    with pytest.raises(E.AuthenticationFailed):
        board.api_caller(scope("GET", **session_headers(board, "v1", ADMIN)))
