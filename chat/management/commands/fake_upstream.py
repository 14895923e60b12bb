"""`manage.py fake_upstream`: run the fake Chat Completions server until killed.

The fake is a test and bench tool (bench/fake_upstream.py): it is imported
only when this command runs, never by the app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
import typing
from argparse import ArgumentParser
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand

if TYPE_CHECKING:
    from bench.fake_upstream import FakeUpstream


def _value_type(annotation: str) -> type:
    from bench.fake_upstream import Scenario

    hint = typing.get_type_hints(Scenario)[annotation]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    assert isinstance(hint, type)
    return hint


class Command(BaseCommand):
    help = "Run a fake OpenAI-compatible upstream (see bench/fake_upstream.py for the knobs)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        from bench.fake_upstream import Scenario

        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9999)
        parser.add_argument(
            "--no-require-key", action="store_true", help="Accept requests without a bearer key."
        )
        for field in dataclasses.fields(Scenario):
            flag = "--" + field.name.replace("_", "-")
            kind = _value_type(field.name)
            if kind is bool:
                parser.add_argument(flag, action="store_true", default=field.default)
            else:
                parser.add_argument(flag, type=kind, default=field.default)

    def handle(self, *args: Any, **options: Any) -> None:
        from bench.fake_upstream import FakeUpstream, Scenario

        scenario = Scenario(**{f.name: options[f.name] for f in dataclasses.fields(Scenario)})
        fake = FakeUpstream(scenario, require_key=not options["no_require_key"])
        asyncio.run(self._serve(fake, options["host"], options["port"]))

    async def _serve(self, fake: FakeUpstream, host: str, port: int) -> None:
        await fake.start(host, port)
        self.stdout.write(fake.base_url)
        self.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()
