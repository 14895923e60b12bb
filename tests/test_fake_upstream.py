"""The fake upstream itself: protocol shape, knobs, HTTP control, thread and CLI modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens, reasoning_tokens

HEADERS = {"Authorization": "Bearer sk-test"}
MESSAGES = [{"role": "user", "content": "hello there"}]
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, headers=HEADERS) as http:
        yield http


def data_payloads(body: str) -> list[str]:
    return [line[6:] for line in body.split("\n") if line.startswith("data: ")]


async def stream_body(client: httpx.AsyncClient, messages: list | None = None) -> list[str]:
    body = {"model": "glm-5", "messages": messages or MESSAGES, "stream": True}
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return data_payloads(response.text)


def test_content_tokens_are_deterministic_and_text_splits_into_words() -> None:
    assert content_tokens(Scenario(tokens=3)) == content_tokens(Scenario(tokens=3))
    assert len(content_tokens(Scenario(tokens=3))) == 3
    assert content_tokens(Scenario(text="Hi there,  you")) == ["Hi", " there,", "  you"]
    assert len(reasoning_tokens(Scenario(reasoning_tokens=0))) == 0


async def test_stream_is_glm_shaped(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.scenario = Scenario(tokens=3, reasoning_tokens=2)
    payloads = await stream_body(client)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert [d.get("reasoning_content") for d in deltas[:2]] == reasoning_tokens(fake.scenario)
    assert [d.get("content") for d in deltas[2:]] == content_tokens(fake.scenario)
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    assert {"id", "created", "model"} <= set(final)


async def test_usage_separate_and_no_done(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.scenario = Scenario(usage_separate=True, no_done=True)
    payloads = await stream_body(client)
    last = json.loads(payloads[-1])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 16
    assert "usage" not in json.loads(payloads[-2])


async def test_non_stream_completion(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.scenario = Scenario(text="Just this.", reasoning_tokens=1)
    bare_path = f"http://127.0.0.1:{fake.port}/chat/completions"
    response = await client.post(bare_path, json={"model": "m", "messages": MESSAGES})
    reply = response.json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"] == "Just this."
    assert reply["choices"][0]["message"]["reasoning_content"]
    assert reply["usage"]["total_tokens"] == 6 + 3


async def test_requires_bearer_key(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as anonymous:
        response = await anonymous.post("/chat/completions", json={"messages": MESSAGES})
    assert response.status_code == 401
    assert response.json()["error"]["message"]


async def test_key_check_can_be_switched_off() -> None:
    async with (
        FakeUpstream(require_key=False) as open_fake,
        httpx.AsyncClient(base_url=open_fake.base_url) as anonymous,
    ):
        response = await anonymous.post("/chat/completions", json={"messages": MESSAGES})
    assert response.status_code == 200


async def test_error_status_with_retry_after(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.enqueue(Scenario(status=429, retry_after="3"))
    first = await client.post("/chat/completions", json={"messages": MESSAGES})
    second = await client.post("/chat/completions", json={"messages": MESSAGES})
    assert first.status_code == 429 and first.headers["retry-after"] == "3"
    assert first.json()["error"]["code"]
    assert second.status_code == 200
    assert len(fake.requests) == 2


async def test_keep_alive_reuses_one_connection(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await stream_body(client)
    assert len(fake.requests) == 3
    assert fake.connections_opened == 1


async def test_override_in_last_message(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": '[[fake {"text": "Custom reply", "usage": false}]] hi'}]
    payloads = await stream_body(client, messages)
    chunks = [json.loads(p) for p in payloads[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Custom reply"
    assert "usage" not in chunks[-1]


async def test_http_control_endpoints(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    await client.post("/_fake/scenario", json={"tokens": 2, "reasoning_tokens": 0})
    await client.post("/_fake/enqueue", json=[{"status": 503}])
    assert (await client.post("/chat/completions", json={"messages": MESSAGES})).status_code == 503
    payloads = await stream_body(client)
    assert len(payloads) == 2 + 1 + 1  # two tokens, the finish chunk, [DONE]
    requests = (await client.get("/_fake/requests")).json()
    assert [r["messages"] for r in requests] == [MESSAGES, MESSAGES]
    await client.post("/_fake/reset")
    assert fake.requests == [] and fake.scenario == Scenario()
    bad = await client.post("/_fake/scenario", json={"no_such_knob": 1})
    assert bad.status_code == 400


async def test_cut_closes_the_connection_mid_body(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    fake.scenario = Scenario(cut_after=1)
    with pytest.raises(httpx.TransportError):
        await client.post("/chat/completions", json={"messages": MESSAGES, "stream": True})


def test_run_in_thread_serves_sync_clients() -> None:
    fake = FakeUpstream(Scenario(tokens=2))
    with fake.run_in_thread() as running:
        response = httpx.post(
            f"{running.base_url}/chat/completions",
            json={"messages": MESSAGES, "stream": True},
            headers=HEADERS,
        )
        fake.enqueue(Scenario(status=500))
        failed = httpx.post(
            f"{running.base_url}/chat/completions", json={"messages": MESSAGES}, headers=HEADERS
        )
    assert data_payloads(response.text)[-1] == "[DONE]"
    assert failed.status_code == 500
    assert len(fake.requests) == 2


def test_management_command_prints_base_url_and_serves() -> None:
    command = [sys.executable, "manage.py", "fake_upstream", "--port", "0", "--tokens", "3"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            response = httpx.post(
                f"{base_url}/chat/completions",
                json={"messages": MESSAGES, "stream": True},
                headers=HEADERS,
                timeout=5,
            )
            chunks = [json.loads(p) for p in data_payloads(response.text)[:-1]]
            assert sum("content" in c["choices"][0]["delta"] for c in chunks[:-1]) == 3
        finally:
            proc.terminate()
            proc.wait(5)
