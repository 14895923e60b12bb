"""Query counts, measured in-process on the benchmark's database.

glmweb has no query log to read from outside, so this process loads the same
settings (same environment, same database), runs real turns through the ASGI
app with channels' WebsocketCommunicator against the same fake upstream, and
counts queries with Django's CaptureQueriesContext on database_sync_to_async's
thread (as tests/conftest.py's QueryCounter does). It also
seeds the long conversation whose page the benchmark then times over HTTP.

`python -m bench.inproc --owner USERNAME --messages 1000` prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import uuid
from datetime import timedelta
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from chat.models import Conversation, Message  # noqa: E402
from glmweb.asgi import application  # noqa: E402

PARAGRAPH = (
    "A reply of a realistic size, with **markdown**, `code` and a list:\n\n"
    "- one point\n- another point\n\n" + "Some more words in a sentence. " * 12
)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


# Each database thread's connection is its own: capture and read on the same thread.
captures = threading.local()


def start_capturing() -> None:
    captures.context = CaptureQueriesContext(connection)
    captures.context.__enter__()


def captured() -> list[str]:
    captures.context.__exit__(None, None, None)
    return [query["sql"] for query in captures.context.captured_queries]


async def turn_queries(cookie: str, tokens: int, delay: float) -> dict[str, Any]:
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    knobs = json.dumps({"tokens": tokens, "reasoning_tokens": 0, "delay": delay})
    frame = {
        "type": "send",
        "conversation": None,
        "content": f"[[fake {knobs}]] count my queries",
        "client_id": uuid.uuid4().hex,
    }
    await database_sync_to_async(start_capturing)()
    await communicator.send_to(text_data=json.dumps(frame))
    deltas = 0
    while True:
        event = json.loads(await communicator.receive_from(timeout=60))
        deltas += event["type"] == "delta"
        if event["type"] in ("done", "error"):
            break
    queries = await database_sync_to_async(captured)()
    await communicator.disconnect()
    return {
        "tokens": tokens,
        "outcome": event["type"],
        "frames": deltas,
        "queries": len(queries),
        "writes": sum(1 for sql in queries if sql.split()[0].upper() in ("INSERT", "UPDATE")),
        # Periodic checkpoints of the text (one per GLMWEB_CHECKPOINT_SECONDS of streaming).
        "checkpoints": sum(1 for sql in queries if _is_checkpoint(sql)),
        "sql": [sql[:100] for sql in queries],
    }


def _is_checkpoint(sql: str) -> bool:
    # The periodic checkpoint is one executemany UPDATE (chat.turns.saving).
    return "UPDATE chat_message SET content" in " ".join(sql.split())


def seed_conversation(owner: Any, count: int) -> Conversation:
    """A conversation of `count` alternating messages, one branch."""
    conversation = Conversation.objects.create(owner=owner, title="Long", model="glm-5")
    start = timezone.now() - timedelta(days=1)
    with transaction.atomic():
        parent = None
        for index in range(count):
            user_turn = index % 2 == 0
            parent = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=Message.Role.USER if user_turn else Message.Role.ASSISTANT,
                content=f"Question {index}?" if user_turn else PARAGRAPH,
                client_id=uuid.uuid4().hex if user_turn else "",
                model="glm-5",
                prompt_tokens=None if user_turn else 100,
                completion_tokens=None if user_turn else 120,
                total_tokens=None if user_turn else 220,
            )
        # auto_now_add stamps them all within a few ms: spread them out as a real chat.
        for index, message in enumerate(conversation.messages.order_by("created_at")):
            Message.objects.filter(id=message.id).update(
                created_at=start + timedelta(seconds=10 * index)
            )
    return conversation


def page_queries(owner: Any, conversation: Conversation) -> dict[str, Any]:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    url = f"/c/{conversation.id}/"
    warm = client.get(url)  # the first page of a process also runs start-up recovery
    if warm.status_code != 200:
        return {"status": warm.status_code, "queries": None, "bytes": 0, "sql": []}
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    return {
        "status": response.status_code,
        "queries": len(context.captured_queries),
        "bytes": len(response.content),
        "sql": [query["sql"][:100] for query in context.captured_queries],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--owner", required=True)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--long-tokens", type=int, default=2000)
    args = parser.parse_args()
    owner = get_user_model().objects.get(username=args.owner)
    cookie = session_cookie(owner)

    async def turns() -> list[dict[str, Any]]:
        await turn_queries(cookie, 5, 0.0)  # warm-up: start-up recovery, first imports
        short = await turn_queries(cookie, 20, 0.0005)
        long = await turn_queries(cookie, args.long_tokens, 0.0005)
        return [short, long]

    short, long = asyncio.run(turns())
    conversation = seed_conversation(owner, args.messages)
    page = page_queries(owner, conversation)
    result = {
        "turn_short": short,
        "turn_long": long,
        "page": page,
        "conversation": str(conversation.id),
        "messages": args.messages,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
