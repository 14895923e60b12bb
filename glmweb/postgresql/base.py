"""Django's PostgreSQL backend, with a health check that needs no round trip.

With CONN_HEALTH_CHECKS Django runs ``SELECT 1`` before a connection's first
use in each request, and channels' database_sync_to_async counts every call as
a request: a round trip more for every database call a socket makes. A
connection the server ended (a restart, pg_terminate_backend, an idle
timeout) has the server's goodbye or the end of the stream waiting on its
socket, so the ``SELECT 1`` is run only when something is there to read.
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.connection.closed
            and not _readable(self.connection.fileno())
        ):
            self.health_check_done = True
        super().close_if_health_check_failed()


def _readable(fd: int) -> bool:
    # An idle connection in autocommit is sent nothing unasked.
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)
