"""The sign-in form's key is compared as typed: a character outside latin-1 is never folded into '?' (which would
let "adm€…" open the session of an admin key written "adm?…")."""

from __future__ import annotations

import asyncio

from dragoman.admin_api import AdminApi, Services
from dragoman.ui.auth import ADMIN, Staff

ADMIN_WITH_QUESTION_MARK = "adm?-sign-in-exact-5e1f"


def test_a_key_with_a_non_latin1_character_does_not_open_the_key_with_a_question_mark() -> None:
    staff = Staff(AdminApi(Services(), [ADMIN_WITH_QUESTION_MARK]))
    assert asyncio.run(staff.caller_for_key(ADMIN_WITH_QUESTION_MARK)).role == ADMIN
    assert asyncio.run(staff.caller_for_key("adm\u20ac-sign-in-exact-5e1f")) is None
