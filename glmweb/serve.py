"""glmweb's worker: daphne, on uvloop.

    python -m glmweb.serve -b 127.0.0.1 -p 8001 glmweb.asgi:application

Takes daphne's options. uvloop runs the event loop under twisted's asyncio
reactor: at 200 streams a worker spends 10-15 % less CPU per token than on
asyncio's own loop (bench/results/README.md, seventh pass).
"""

import asyncio

from twisted.internet import asyncioreactor

try:
    import uvloop
except ImportError:  # no uvloop on Windows: asyncio's loop
    uvloop = None


def main() -> None:
    loop = uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()
    # Before daphne is imported: it keeps an asyncio reactor already installed.
    asyncioreactor.install(loop)
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
