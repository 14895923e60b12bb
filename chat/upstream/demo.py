"""The offline demo model: canned replies, streamed like a real model.

Used when no UPSTREAM_API_KEY is set, so a fresh clone chats out of the box.
It yields the same typed events as `stream_chat_batches`: a list of those
whose time has come each time it is asked, like a read of the socket.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from chat.upstream.events import ChatRequest, ContentDelta, Event, Finish, ReasoningDelta, Usage

TOKEN_DELAY = 0.03

REASONING = (
    "The person wrote to the demo model. I'll explain what this is and how to connect a real model."
)

ANSWER = """Hello! I'm the **offline demo model** built into glmweb. No API key is set, \
so these replies are canned, but everything around them is real: streaming, \
markdown, stop, and your conversations are saved.

You wrote:

> {quote}

To chat with GLM-5, start glmweb with an API key:

```bash
UPSTREAM_API_KEY=your-key make run
```

| setting | default |
|---|---|
| `UPSTREAM_BASE_URL` | `https://toapis.com/v1` |
| `UPSTREAM_MODEL` | `glm-5` |
"""


def tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


async def stream_demo(request: ChatRequest) -> AsyncGenerator[list[Event], None]:
    """Token i is due TOKEN_DELAY * (i + 1) after the start."""
    last = request.messages[-1]["content"] if request.messages else ""
    quote = " ".join(last.split())[:200] or "(nothing)"
    reasoning, answer = tokens(REASONING), tokens(ANSWER.format(quote=quote))
    deltas: list[Event] = [*map(ReasoningDelta, reasoning), *map(ContentDelta, answer)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while sent < len(deltas):
        await asyncio.sleep(max(0.0, started + TOKEN_DELAY * (sent + 1) - loop.time()))
        due = max(sent + 1, min(len(deltas), int((loop.time() - started) / TOKEN_DELAY)))
        batch, sent = deltas[sent:due], due
        yield batch
    prompt = request.estimated_prompt_tokens()
    completion = len(reasoning) + len(answer)
    yield [Finish("stop"), Usage(prompt, completion, prompt + completion)]
