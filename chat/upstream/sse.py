"""A reply's body as typed events: a streamed body (Server-Sent Events) or a whole completion.

Plain parsing, no I/O: `SSEParser` takes bytes as they arrive, `completion_events`
a whole `chat.completion` body. Provider text in errors goes through redaction.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chat.upstream.errors import (
    CUT_OFF_MESSAGE,
    ProtocolError,
    UpstreamError,
    snippet,
    stream_error,
)
from chat.upstream.events import ContentDelta, Event, Finish, ReasoningDelta, Usage

_JSON = json.JSONDecoder()
_LINE_END_RE = re.compile(rb"\r\n|\r|\n")
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class _ThinkSplitter:
    """Routes `<think>…</think>` at the start of `delta.content` to reasoning.

    Only a think block opening before any visible answer text counts: a reply
    that *talks about* the tag later on must stay content.
    """

    def __init__(self) -> None:
        self.phase = "before"  # "before" -> "inside" -> "after"
        self.held = ""

    def split(self, text: str) -> list[Event]:
        if self.phase == "after":
            return [ContentDelta(text)] if text else []
        text = self.held + text
        self.held = ""
        events: list[Event] = []
        while text and self.phase != "after":
            tag = _THINK_OPEN if self.phase == "before" else _THINK_CLOSE
            at = text.find(tag)
            keep = 0 if at >= 0 else _partial_tag_length(text, tag)
            before_tag = text[:at] if at >= 0 else text[: len(text) - keep]
            if self.phase == "before" and before_tag.strip():
                self.phase = "after"  # visible text came first: no think block
                break
            if at >= 0:
                self._emit(events, text[:at])
                text = text[at + len(tag) :]
                self.phase = "inside" if self.phase == "before" else "after"
                continue
            self._emit(events, before_tag)
            self.held, text = text[len(text) - keep :], ""
        if text:
            events.append(ContentDelta(text))
        return events

    def flush(self) -> list[Event]:
        held, self.held = self.held, ""
        events: list[Event] = []
        self._emit(events, held)
        return events

    def _emit(self, events: list[Event], text: str) -> None:
        if text:
            events.append(ReasoningDelta(text) if self.phase == "inside" else ContentDelta(text))


def _usage_from(payload: object) -> Usage | None:
    if not isinstance(payload, dict):
        return None
    prompt, completion = payload.get("prompt_tokens"), payload.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = payload.get("total_tokens")
    # Some providers (x.ai) count reasoning in total_tokens only: keep their total.
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


class SSEParser:
    """Incremental parser for a streamed Chat Completions body.

    Feed raw bytes as they arrive and get typed events back. Deltas come out as
    soon as their chunk is complete; `Finish` and `Usage` come out once each, at
    the end (on `[DONE]` or `close()`), carrying the last finish_reason and the
    last complete usage object seen, because providers repeat both (Avian sends
    two finish chunks, Groq sends usage twice, others send usage after finish).
    `data_lines` counts `data:` lines so far: a watchdog can tell real data
    from keep-alive comments by comparing it before and after a `feed()`.
    `key` is the API key, kept out of the errors' texts.
    """

    def __init__(self, key: str = "") -> None:
        self._key = key
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.data_lines = 0
        self._buffer = b""
        self._data: list[str] = []
        self._think = _ThinkSplitter()
        self._ended = False
        # An error met after some events of the same feed, raised after them.
        self.pending_error: UpstreamError | None = None

    @property
    def finished(self) -> bool:
        """The reply said it is complete: a finish_reason or [DONE] came."""
        return self.finish_reason is not None or self.done

    def feed(self, data: bytes) -> list[Event]:
        if self.pending_error is not None:
            raise self.pending_error
        if not data or self._ended:
            return []
        scan_from = max(len(self._buffer) - 1, 0)
        buffer = self._buffer + data
        events: list[Event] = []
        start = 0
        try:
            if not self._data and b"\r" not in buffer:
                start = scan_from = self._whole_data_events(buffer, events)
            for match in _LINE_END_RE.finditer(buffer, scan_from):
                # A CR at the very end may be the first half of a CRLF still in flight.
                if match.group() == b"\r" and match.end() == len(buffer):
                    break
                self._line(buffer[start : match.start()], events)
                start = match.end()
                if self._ended:
                    break
        except UpstreamError as error:
            if not events:
                raise
            # The events before the bad one still count: they go out first, and
            # the error with the next call (see `pending_error`).
            self.pending_error, self._ended = error, True
        self._buffer = b"" if self._ended else buffer[start:]
        return events

    def close(self) -> list[Event]:
        """End of body: flush what is pending; ProtocolError if the reply was cut."""
        if self.pending_error is not None:
            raise self.pending_error
        events: list[Event] = []
        if not self._ended:
            if self._buffer:
                self._line(self._buffer.rstrip(b"\r"), events)
                self._buffer = b""
            if not self._ended:
                self._dispatch(events)
        if not self._ended:
            if self.finish_reason is None:
                raise ProtocolError(
                    CUT_OFF_MESSAGE, detail="stream ended without finish_reason or [DONE]"
                )
            events.extend(self._end())
        return events

    def _whole_data_events(self, buffer: bytes, events: list[Event]) -> int:
        """Take the run of complete one-line `data: {…}` events `buffer` opens with.

        Nearly every event of a stream is one, and this takes each with a few
        calls into C instead of the line-by-line parser's Python per line.
        Returns where the run ends: the line-by-line parser takes the rest.
        """
        last = buffer.rfind(b"\n\n")
        if last < 0:
            return 0
        try:
            text = buffer[: last + 2].decode()
        except UnicodeDecodeError:
            return 0  # the line-by-line parser replaces what isn't UTF-8
        pos = 0
        while (end := text.find("\n\n", pos)) >= 0 and text.startswith("data:", pos):
            value_at = pos + 6 if text.startswith(" ", pos + 5) else pos + 5
            if not text.startswith("{", value_at):
                break
            try:
                chunk, chunk_end = _JSON.raw_decode(text, value_at)
            except ValueError:
                break
            if chunk_end != end or text.find("\n", value_at, end) >= 0:
                break  # more on the line, or more lines in the event
            self.data_lines += 1
            pos = end + 2
            self._chunk(chunk, events)
        return last + 2 if pos == len(text) else len(text[:pos].encode())

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return  # comment / keep-alive
        field, _, value = raw.partition(b":")
        if field != b"data":
            return  # event:, id:, retry: and unknown fields carry nothing for us
        self.data_lines += 1
        if value[:1] == b" ":
            value = value[1:]
        self._data.append(value.decode("utf-8", errors="replace"))

    def _dispatch(self, events: list[Event]) -> None:
        if not self._data:
            return
        lines, self._data = self._data, []
        payload = "\n".join(lines)
        try:
            chunks = [json.loads(payload)] if payload.strip() != "[DONE]" else [None]
        except ValueError:
            chunks = self._lines_as_chunks(lines)
        for chunk in chunks:
            if chunk is None:
                self.done = True
                events.extend(self._end())
                return
            self._chunk(chunk, events)

    def _lines_as_chunks(self, lines: list[str]) -> list[Any]:
        # Some servers omit the blank line between events; try each line alone.
        chunks: list[Any] = []
        for line in lines:
            if line.strip() == "[DONE]":
                chunks.append(None)
                continue
            try:
                chunks.append(json.loads(line))
            except ValueError:
                raise ProtocolError(
                    detail=f"malformed JSON chunk: {snippet(line, self._key, 200)}"
                ) from None
        return chunks

    def _chunk(self, chunk: Any, events: list[Event]) -> None:
        if not isinstance(chunk, dict):
            raise ProtocolError(
                detail=f"chunk is not an object: {snippet(str(chunk), self._key, 100)}"
            )
        if chunk.get("error"):
            raise stream_error(chunk["error"], self._key)
        usage = _usage_from(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(delta, events)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.extend(self._think.split(content))

    def _end(self) -> list[Event]:
        self._ended = True
        events = self._think.flush()
        # [DONE] without any finish_reason is still a normal, complete reply.
        events.append(Finish(self.finish_reason or "stop"))
        if self.usage is not None:
            events.append(self.usage)
        return events


# --- a whole (non-streamed) completion ---


def completion_events(text: str, key: str) -> list[Event]:
    """Events equivalent to a whole (non-streamed) chat.completion body."""
    try:
        payload = json.loads(text)
        if payload.get("error"):
            raise stream_error(payload["error"], key)
        choice = payload["choices"][0]
        message = choice["message"]
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        detail = f"unexpected completion body: {snippet(text, key, 200)}"
        raise ProtocolError(detail=detail) from None
    events: list[Event] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(reasoning))
    content = message.get("content")
    splitter = _ThinkSplitter()
    events += [*splitter.split(content if isinstance(content, str) else ""), *splitter.flush()]
    events.append(Finish(choice.get("finish_reason") or "stop"))
    usage = _usage_from(payload.get("usage"))
    return [*events, usage] if usage else events


def completion_answer(text: str, key: str) -> tuple[str, Usage | None]:
    events = completion_events(text, key)
    answer = "".join(e.text for e in events if isinstance(e, ContentDelta))
    usage = next((e for e in events if isinstance(e, Usage)), None)
    return answer, usage
