"""Is a socket's login still good?

channels' AuthMiddlewareStack finds the socket's user once, as it connects.
A logout in another tab, a password change, an expired session or a
deactivated account must also end a socket already open: each socket
rechecks its login on its first frame, then at most once every
GLMWEB_SESSION_RECHECK_SECONDS, through Django's own ``auth.get_user``.
"""

from __future__ import annotations

import time
from importlib import import_module

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest


class LoginCheck:
    """One socket's login: its session key and the user it logged in."""

    def __init__(self, session_key: str | None, user_id: int) -> None:
        self.session_key = session_key
        self.user_id = user_id
        self.checked_at: float | None = None

    async def still_valid(self) -> bool:
        now = time.monotonic()
        recheck: float = settings.GLMWEB_SESSION_RECHECK_SECONDS
        if self.checked_at is not None and now - self.checked_at < recheck:
            return True
        if not await login_still_valid(self.session_key, self.user_id):
            return False
        self.checked_at = now
        return True


@database_sync_to_async
def login_still_valid(session_key: str | None, user_id: int) -> bool:
    """Whether the session, read afresh, still logs in this user, and the user is active."""
    if session_key is None:
        return False
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = auth.get_user(request)
    return user.is_authenticated and user.pk == user_id
