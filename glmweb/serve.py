"""glmweb's worker: daphne on uvloop, saving the replies it streams when it stops.

    python -m glmweb.serve -b 127.0.0.1 -p 8001 glmweb.asgi:application

Takes daphne's options. uvloop runs the event loop under twisted's asyncio
reactor, installed as twisted documents it (asyncioreactor.install with a
loop): at 200 streams a worker spends 10-15 % less CPU per token than on
asyncio's own loop (docs/performance.md). On SIGTERM or SIGINT each running
reply saves its text so far, marked interrupted, before the worker exits;
without that a restart loses what came since the last checkpoint. What is
loaded at start is frozen out of the garbage collector's full collections. A
socket frame over GLMWEB_MAX_FRAME_BYTES closes the socket with 1009 and a
reason (docs/protocol.md), where daphne alone has a limit of its own and drops
the TCP connection without a word.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from typing import Any

from twisted.internet import asyncioreactor
from twisted.internet.defer import Deferred


def main() -> None:
    # Before daphne is imported: it keeps an asyncio reactor already installed.
    asyncioreactor.install(new_event_loop())  # type: ignore[no-untyped-call]
    from daphne.cli import CommandLineInterface
    from twisted.internet import reactor

    # mypy reads twisted's zope interfaces' methods as if their first argument were self.
    reactor.addSystemEventTrigger("before", "shutdown", save_running_turns)  # type: ignore[arg-type]
    # When the reactor starts Django and the application are loaded. They live
    # as long as the worker: a full collection scanning them stalled every
    # stream for ~0.1 s.
    reactor.callWhenRunning(gc.freeze)
    cli = CommandLineInterface()
    # Before the first connection: the server and its factory exist by now.
    reactor.callWhenRunning(close_oversized_frames, cli)
    cli.run([*frame_limit_options(), *sys.argv[1:]])


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # no uvloop on Windows: asyncio's loop
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def frame_limit_options() -> list[str]:
    """daphne's frame limits set to GLMWEB_MAX_FRAME_BYTES (options given after it win)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
    from django.conf import settings

    limit = str(settings.GLMWEB_MAX_FRAME_BYTES)
    return ["--websocket-max-message-size", limit, "--websocket-max-frame-size", limit]


def close_oversized_frames(cli: Any) -> None:
    """A frame over the limit gets a close frame (1009 and a reason), not a dropped connection.

    autobahn fails a connection by dropping it (failByDrop) unless told
    otherwise; daphne leaves that as it is.
    """
    cli.server.ws_factory.setProtocolOptions(failByDrop=False)


def save_running_turns() -> Deferred[None]:
    # Imported only now: daphne has set Django up by loading the application.
    from chat.turns.runner import interrupt_running_turns

    return Deferred.fromFuture(asyncio.ensure_future(interrupt_running_turns()))


if __name__ == "__main__":
    main()
