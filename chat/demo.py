"""The offline demo model: canned replies, streamed like a real model.

Used when no UPSTREAM_API_KEY is set, so a fresh clone chats out of the box.
It yields the same typed events as chat.upstream.stream_chat.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from chat import upstream

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


async def stream_demo(request: upstream.ChatRequest) -> AsyncIterator[upstream.Event]:
    last = request.messages[-1]["content"] if request.messages else ""
    quote = " ".join(last.split())[:200] or "(nothing)"
    reasoning, answer = tokens(REASONING), tokens(ANSWER.format(quote=quote))
    for token in reasoning:
        await asyncio.sleep(TOKEN_DELAY)
        yield upstream.ReasoningDelta(token)
    for token in answer:
        await asyncio.sleep(TOKEN_DELAY)
        yield upstream.ContentDelta(token)
    yield upstream.Finish("stop")
    prompt = sum(len(m["content"]) for m in request.messages) // 4 + 4 * len(request.messages)
    completion = len(reasoning) + len(answer)
    yield upstream.Usage(prompt, completion, prompt + completion)
