"""Who a socket logs in as, and is that login still good?

`SocketLogin` finds the user from the session cookie once, as the socket
connects. `still_valid` rechecks it on the socket's frames, in shared trips:
A logout in another tab, a password change or a deactivation ends a socket
at its first frame more than GLMWEB_SESSION_RECHECK_SECONDS after its login
was last checked. The sockets of one login share that check. The checks
asked for at the same moment, as in a burst of sends from many sockets, go to
the database thread in one trip, where each would otherwise queue a trip of
its own ahead of the turn starts.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from functools import cache
from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.http.cookie import parse_cookie
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from chat.db import database_call

Login = tuple[str, int]  # session key, user id


class SocketLogin:
    """ASGI middleware: the socket's session and user in its scope, as it connects.

    What channels' AuthMiddlewareStack gives a consumer, without the wrapper
    that stack puts around the socket's send to save changed sessions on HTTP
    responses. A socket sends none, and every event of every stream paid for
    the wrapper (about 3 % of a worker's time at 200 streams).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session = store(_session_cookie(scope))
        user = await get_user({"session": session})
        return await self.inner({**scope, "session": session, "user": user}, receive, send)


def _session_cookie(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
    return None


# Logins found good, by when the check began (time.monotonic()).
_found_good: dict[Login, float] = {}


async def still_valid(session: SessionBase | None, user_id: int | None) -> bool:
    """Whether the socket's session still logs in ``user_id`` (checked, or known for a moment)."""
    if session is None or user_id is None or session.session_key is None:
        return False
    login = (session.session_key, user_id)
    checked_at = _found_good.get(login)
    if checked_at is not None and time.monotonic() - checked_at < recheck_seconds():
        return True
    return await _checks_on(asyncio.get_running_loop()).answer(login, session)


def recheck_seconds() -> float:
    return settings.GLMWEB_SESSION_RECHECK_SECONDS


class _Checks:
    """The checks waiting on one event loop, and the task that takes them to the database."""

    def __init__(self) -> None:
        self.waiting: dict[Login, tuple[SessionBase, asyncio.Future[bool]]] = {}
        self.on_the_way: dict[Login, asyncio.Future[bool]] = {}
        self.runner: asyncio.Task[None] | None = None

    async def answer(self, login: Login, session: SessionBase) -> bool:
        # A check already on its way answers for the recheck time too.
        future = self.on_the_way.get(login) if recheck_seconds() > 0 else None
        if future is None:
            if login not in self.waiting:
                self.waiting[login] = (session, asyncio.get_running_loop().create_future())
                if self.runner is None or self.runner.done():
                    self.runner = asyncio.create_task(self.run(), name="login-checks")
            future = self.waiting[login][1]
        # Shielded: a socket closing mustn't cancel the answer other sockets wait for.
        return await asyncio.shield(future)

    async def run(self) -> None:
        await asyncio.sleep(0)  # the frames read in this same moment join the trip
        while self.waiting:
            batch, self.waiting = self.waiting, {}
            self.on_the_way = {login: future for login, (_, future) in batch.items()}
            began = time.monotonic()
            logins = [(session, user_id) for (_, user_id), (session, _) in batch.items()]
            try:
                answers = await logins_valid(logins)
            except Exception as error:
                for _, future in batch.values():
                    future.set_exception(error)
                continue
            finally:
                self.on_the_way = {}
            _forget_checks_before(began - recheck_seconds())
            for (login, (_, future)), good in zip(batch.items(), answers, strict=True):
                if good:
                    _found_good[login] = began
                else:
                    _found_good.pop(login, None)
                future.set_result(good)


_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Checks] = weakref.WeakKeyDictionary()


def _checks_on(loop: asyncio.AbstractEventLoop) -> _Checks:
    if loop not in _checks:
        _checks[loop] = _Checks()
    return _checks[loop]


def _forget_checks_before(moment: float) -> None:
    for login in [login for login, at in _found_good.items() if at < moment]:
        del _found_good[login]


@database_call
def logins_valid(logins: list[tuple[SessionBase, int]]) -> list[bool]:
    """Re-read each session and its user: still there, unexpired, same password, active.

    One statement a login over Django's session table and the user's row:
    through the session store and the ORM the same check cost 1.1-1.5 ms of
    building queries against 0.16-0.21 ms this way.
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        return [_login_valid(cursor, now, session, user_id) for session, user_id in logins]


def _login_valid(cursor: CursorWrapper, now: object, session: SessionBase, user_id: int) -> bool:
    cursor.execute(session_check_sql(), [user_id, session.session_key, now])
    found = cursor.fetchone()
    if found is None:  # logged out, expired, or the user deactivated
        return False
    session_data, password = found
    stored = session.decode(session_data)
    if str(stored.get(SESSION_KEY)) != str(user_id):
        return False
    user = get_user_model()(pk=user_id, password=password)
    return constant_time_compare(stored.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())


@cache
def session_check_sql() -> str:
    user = get_user_model()._meta
    password = user.get_field("password").column
    active = user.get_field("is_active").column
    return f"""
        SELECT s.session_data, u.{password}
        FROM {Session._meta.db_table} s JOIN {user.db_table} u ON u.{user.pk.column} = %s
        WHERE s.session_key = %s AND s.expire_date > %s AND u.{active}
    """
