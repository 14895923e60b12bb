"""A fake OpenAI-compatible Chat Completions server for tests and benchmarks.

Real HTTP/1.1 on loopback (plain asyncio streams, keep-alive, chunked SSE in
GLM style), with knobs (`Scenario`) for every failure the client must survive.
No Django here: tests, the benchmark and `manage.py fake_upstream` all import it.

Control over HTTP, for a fake running in another process (also under /v1/_fake/):
  POST /_fake/scenario  JSON object of Scenario fields -> new default
  POST /_fake/enqueue   JSON list of Scenario objects  -> per-request, FIFO
  GET  /_fake/requests  JSON list of request bodies received
  POST /_fake/reset     clear requests and queue, default scenario
A request whose last message starts with `[[fake {json}]]` applies those
Scenario fields to itself. `{api_key}` in `error_body` or `error_message` is
replaced by the key the request carried: a provider echoing it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("bench.fake_upstream")

_ERROR_DEFAULTS: dict[int, tuple[str, str, str]] = {
    400: ("Invalid request: messages must not be empty.", "invalid_request_error", "400"),
    401: ("Invalid API key.", "authentication_error", "401"),
    402: ("Insufficient balance.", "insufficient_balance", "1113"),
    403: ("You do not have access to this model.", "permission_error", "403"),
    404: ("The model does not exist.", "not_found_error", "model_not_found"),
    422: ("Unprocessable request.", "invalid_request_error", "422"),
    429: ("Rate limit reached, please retry later.", "rate_limit_error", "1302"),
    500: ("Internal server error.", "server_error", "500"),
    502: ("Bad gateway.", "server_error", "502"),
    503: ("Service temporarily unavailable.", "server_error", "503"),
    529: ("The service is overloaded.", "overloaded_error", "529"),
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    411: "Length Required",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Site Overloaded",
}
_CONTENT_WORDS = (
    "Olá",
    "this",
    "is",
    "a",
    "deterministic",
    "reply",
    "from",
    "the",
    "fake",
    "upstream",
    "—",
    "naïve",
    "café",
    "日本語",
    "tokens",
    "stream",
)
_REASONING_WORDS = ("Let", "me", "think", "about", "this", "carefully", "…", "ok")
_FAKE_PREFIX = "[[fake "


@dataclass
class Scenario:
    """What the fake does for one request."""

    tokens: int = 12
    reasoning_tokens: int = 4
    delay: float = 0.0
    first_delay: float = 0.0
    usage: bool = True
    usage_separate: bool = False
    finish_reason: str = "stop"
    status: int | None = None
    error_body: str | None = None  # served as JSON if it starts with { or [, else text
    retry_after: str | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    keepalive_every: float | None = None
    malformed_after: int | None = None
    error_after: int | None = None
    error_message: str = "The model backend failed."  # of the error_after event
    no_done: bool = False
    think_tags: bool = False
    text: str | None = None

    @classmethod
    def from_dict(cls, fields: dict[str, Any], base: Scenario | None = None) -> Scenario:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"unknown scenario fields: {sorted(unknown)}")
        return dataclasses.replace(base or cls(), **fields)


def _split_words(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def content_tokens(scenario: Scenario) -> list[str]:
    """The exact content token strings `scenario` streams (before any fault)."""
    if scenario.text is not None:
        return _split_words(scenario.text)
    return [
        ("" if i == 0 else " ") + _CONTENT_WORDS[i % len(_CONTENT_WORDS)]
        for i in range(scenario.tokens)
    ]


def reasoning_tokens(scenario: Scenario) -> list[str]:
    """The exact reasoning token strings `scenario` streams."""
    return [
        ("" if i == 0 else " ") + _REASONING_WORDS[i % len(_REASONING_WORDS)]
        for i in range(scenario.reasoning_tokens)
    ]


def prompt_tokens_for(body: dict[str, Any]) -> int:
    """Deterministic prompt token count: words in every message plus 4 per message."""
    messages = body.get("messages") or []
    return sum(len(str(m.get("content", "")).split()) + 4 for m in messages if isinstance(m, dict))


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Disconnected(Exception):
    pass


class _Stream:
    """Writes one SSE reply; one write + drain per token."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        scenario: Scenario,
        body: dict[str, Any],
        key: str = "",
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.scenario = scenario
        self.body = body
        self.key = key
        self.sent_completion = 0
        head = {
            "id": f"chatcmpl-fake{time.monotonic_ns():x}",
            "created": int(time.time()),
            "model": str(body.get("model", "glm-5")),
        }
        prefix = json.dumps(head, ensure_ascii=False)[:-1]
        self.prefix = (
            "data: " + prefix + ',"choices":[{"index":0,"delta":{"role":"assistant","'
        ).encode()
        self.head = head

    def hung_up(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    async def send(self, raw: bytes) -> None:
        if self.hung_up():
            raise _Disconnected
        try:
            self.writer.write(_chunk(raw))
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _Disconnected from exc

    async def delta(self, field: str, text: str) -> None:
        await self.send(b'%s%s":%s}}]}\n\n' % (self.prefix, field.encode(), _json(text)))
        self.sent_completion += 1

    async def wait(self, seconds: float) -> None:
        """Sleep, sending keep-alive comments if asked, noticing a hang-up promptly."""
        every = self.scenario.keepalive_every
        if seconds <= 0.05 and not every:
            await asyncio.sleep(seconds)  # the hot path between tokens: keep it cheap
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        next_ping = loop.time() + every if every else None
        step = min(seconds, 0.05, every or 0.05)
        while (now := loop.time()) < end:
            if next_ping is not None and now >= next_ping:
                await self.send(b": keep-alive\n\n")
                next_ping = now + (every or 0)
            if self.hung_up():
                raise _Disconnected
            await asyncio.sleep(min(step, end - now))
        if self.hung_up():
            raise _Disconnected

    async def run(self) -> bool:
        """Stream the reply; return False if the connection must be dropped."""
        s = self.scenario
        self.writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        if s.first_delay:
            await self.wait(s.first_delay)
        await self.reasoning()
        for index, token in enumerate(content_tokens(s)):
            if not await self.before_content(index):
                return False
            if self.out_of_tokens():
                await self.finish("length")
                return True
            await self.delta("content", token)
            if s.delay:
                await self.wait(s.delay)
        if not await self.before_content(len(content_tokens(s))):
            return False
        await self.finish()
        return True

    async def reasoning(self) -> None:
        s = self.scenario
        tokens = reasoning_tokens(s)
        if not tokens:
            return
        if s.think_tags:
            tokens = ["<think>", *tokens, "</think>"]
        for token in tokens:
            if self.out_of_tokens() and not s.think_tags:
                return
            await self.delta("content" if s.think_tags else "reasoning_content", token)
            if s.delay:
                await self.wait(s.delay)
        if s.think_tags:
            self.sent_completion -= 2  # the tags themselves are not tokens

    async def before_content(self, index: int) -> bool:
        """Apply the fault planned after `index` content tokens; False ends the reply."""
        s = self.scenario
        if s.cut_after == index:
            self.writer.transport.abort()
            return False
        if s.stall_after == index:
            while True:
                await self.wait(3600)
        if s.malformed_after == index:
            await self.send(b'data: {"id": "broken", "choices": [{"delta": {"content": "x\n\n')
            await self.send(b"")
            return False
        if s.error_after == index:
            message = _echo_key(s.error_message, self.key)
            error = {"error": {"message": message, "code": "500"}}
            await self.send(b"data: " + json.dumps(error).encode() + b"\n\n")
            await self.send(b"")
            return False
        return True

    def out_of_tokens(self) -> bool:
        """The request's max_tokens are spent: a real upstream ends at the length limit."""
        limit = self.body.get("max_tokens")
        return isinstance(limit, int) and self.sent_completion >= limit

    async def finish(self, reason: str | None = None) -> None:
        s = self.scenario
        usage = self.usage()
        final: dict[str, Any] = {
            **self.head,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": reason or s.finish_reason,
                    "delta": {"role": "assistant", "content": ""},
                }
            ],
        }
        if s.usage and not s.usage_separate:
            final["usage"] = usage
        parts = [b"data: " + json.dumps(final).encode() + b"\n\n"]
        if s.usage and s.usage_separate:
            only_usage = {**self.head, "choices": [], "usage": usage}
            parts.append(b"data: " + json.dumps(only_usage).encode() + b"\n\n")
        if not s.no_done:
            parts.append(b"data: [DONE]\n\n")
        await self.send(b"".join(parts))
        await self.send(b"")  # the zero-length chunk ends the body

    def usage(self) -> dict[str, int]:
        prompt = prompt_tokens_for(self.body)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.sent_completion,
            "total_tokens": prompt + self.sent_completion,
        }


def _json(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


class FakeUpstream:
    """Loopback server speaking the Chat Completions protocol, with fault knobs."""

    def __init__(self, scenario: Scenario | None = None, *, require_key: bool = True) -> None:
        self.scenario = scenario or Scenario()
        self.require_key = require_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0  # streams whose client hung up before the reply ended
        self.active_streams = 0
        self.connections_opened = 0
        self.port = 0
        self.host = "127.0.0.1"
        self._queue: deque[Scenario] = deque()
        self.scheme = "http"
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/v1"

    def enqueue(self, *scenarios: Scenario) -> None:
        self._queue.extend(scenarios)

    def reset(self) -> None:
        self.requests.clear()
        self.headers.clear()
        self._queue.clear()
        self.disconnects = 0
        self.scenario = Scenario()

    # --- lifecycle ---

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=4096, ssl=tls)
        self.scheme = "https" if tls else "http"
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def run_in_thread(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> Iterator[FakeUpstream]:
        """Serve from a daemon thread with its own event loop (sync tests, live servers)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start(host, port, tls))
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="fake-upstream", daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    # --- HTTP ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_opened += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bad knob value must not take the whole fake down
            logger.exception("fake upstream: request handler failed")
        finally:
            self._connections.discard(task)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await self._respond(writer, 411, {"error": {"message": "Length required."}})
            return False
        raw = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        keep_alive = headers.get("connection", "").lower() != "close"
        return await self._route(reader, writer, method, path.split("?")[0], headers, raw) and (
            keep_alive
        )

    async def _route(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
    ) -> bool:
        path = path.removeprefix("/v1")  # serve both /v1/… and bare paths
        if path.startswith("/_fake/"):
            return await self._control(writer, method, path, raw)
        if method != "POST" or path != "/chat/completions":
            await self._respond(writer, 404, {"error": {"message": "Unknown endpoint."}})
            return True
        try:
            body = json.loads(raw or b"{}")
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            await self._respond(writer, 400, {"error": {"message": "Body is not JSON."}})
            return True
        self.requests.append(body)
        self.headers.append(headers)
        if self.require_key and not _has_bearer(headers):
            await self._respond(writer, 401, _error_payload(401))
            return True
        try:
            scenario = self._scenario_for(body)
        except (ValueError, TypeError) as exc:
            await self._respond(writer, 400, {"error": {"message": str(exc)}})
            return True
        return await self._reply(reader, writer, scenario, body, _bearer(headers))

    def _scenario_for(self, body: dict[str, Any]) -> Scenario:
        scenario = self._queue.popleft() if self._queue else self.scenario
        messages = body.get("messages") or []
        last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
        if isinstance(last, str) and last.startswith(_FAKE_PREFIX):
            fields, end = json.JSONDecoder().raw_decode(last, len(_FAKE_PREFIX))
            if not last.startswith("]]", end):
                raise ValueError("[[fake …]] override must end with ]]")
            scenario = Scenario.from_dict(fields, scenario)
        return scenario

    async def _reply(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        scenario: Scenario,
        body: dict[str, Any],
        key: str,
    ) -> bool:
        if scenario.status is not None:
            await self._respond_error(writer, scenario, key)
            return True
        if not body.get("stream"):
            if scenario.first_delay:
                await asyncio.sleep(scenario.first_delay)
            await self._respond(writer, 200, _completion(scenario, body))
            return True
        stream = _Stream(reader, writer, scenario, body, key)
        self.active_streams += 1
        try:
            return await stream.run()
        except _Disconnected:
            self.disconnects += 1
            return False
        finally:
            self.active_streams -= 1

    async def _respond_error(
        self, writer: asyncio.StreamWriter, scenario: Scenario, key: str
    ) -> None:
        status = scenario.status or 500
        extra = {"Retry-After": scenario.retry_after} if scenario.retry_after else {}
        if scenario.error_body is not None:
            kind = (
                "application/json" if scenario.error_body.startswith(("{", "[")) else "text/plain"
            )
            await self._send(
                writer, status, _echo_key(scenario.error_body, key).encode(), kind, extra
            )
        else:
            await self._respond(writer, status, _error_payload(status), extra)

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: object,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        await self._send(writer, status, data, "application/json", extra)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        data: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        await writer.drain()

    async def _control(
        self, writer: asyncio.StreamWriter, method: str, path: str, raw: bytes
    ) -> bool:
        try:
            result = self._apply_control(method, path, json.loads(raw) if raw else None)
        except (ValueError, TypeError) as exc:
            await self._respond(writer, 400, {"error": {"message": str(exc)}})
            return True
        if result is None:
            await self._respond(writer, 404, {"error": {"message": "Unknown control endpoint."}})
        else:
            await self._respond(writer, 200, result)
        return True

    def _apply_control(self, method: str, path: str, payload: Any) -> object | None:
        if (method, path) == ("GET", "/_fake/requests"):
            return self.requests
        if (method, path) == ("POST", "/_fake/scenario"):
            self.scenario = Scenario.from_dict(payload or {})
            return dataclasses.asdict(self.scenario)
        if (method, path) == ("POST", "/_fake/enqueue"):
            self.enqueue(*(Scenario.from_dict(item) for item in payload or []))
            return {"queued": len(self._queue)}
        if (method, path) == ("POST", "/_fake/reset"):
            self.reset()
            return {"ok": True}
        return None


def _has_bearer(headers: dict[str, str]) -> bool:
    return bool(_bearer(headers))


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _echo_key(text: str, key: str) -> str:
    return text.replace("{api_key}", key)


def _error_payload(status: int) -> dict[str, Any]:
    message, kind, code = _ERROR_DEFAULTS.get(status, ("Upstream error.", "api_error", str(status)))
    return {"error": {"message": message, "type": kind, "code": code}}


def _completion(scenario: Scenario, body: dict[str, Any]) -> dict[str, Any]:
    thinking = "".join(reasoning_tokens(scenario))
    content = "".join(content_tokens(scenario))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking and scenario.think_tags:
        message["content"] = f"<think>{thinking}</think>{content}"
    elif thinking:
        message["reasoning_content"] = thinking
    prompt = prompt_tokens_for(body)
    completion = len(reasoning_tokens(scenario)) + len(content_tokens(scenario))
    reply: dict[str, Any] = {
        "id": f"chatcmpl-fake{time.monotonic_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "glm-5")),
        "choices": [{"index": 0, "message": message, "finish_reason": scenario.finish_reason}],
    }
    if scenario.usage:
        reply["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return reply
