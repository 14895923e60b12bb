"""SSEParser: raw bytes of a streamed Chat Completions body in, typed events out."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.upstream import (
    ContentDelta,
    Event,
    Finish,
    ProtocolError,
    ReasoningDelta,
    SSEParser,
    StreamError,
    Usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sse"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
EVERY_BYTE_LIMIT = 200_000  # larger recordings get many random boundaries instead


def parse(raw: bytes, cuts: list[int] | None = None) -> list[Event]:
    """Feed `raw` split at `cuts` (sorted offsets), then close."""
    parser = SSEParser()
    events: list[Event] = []
    start = 0
    for cut in [*(cuts or []), len(raw)]:
        events += parser.feed(raw[start:cut])
        start = cut
    return events + parser.close()


def content(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


def reasoning(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


def finishes(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Finish)]


def usages(events: list[Event]) -> list[Usage]:
    return [e for e in events if isinstance(e, Usage)]


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> dict:
    choice: dict = {"index": 0, "delta": delta or {}}
    if finish:
        choice["finish_reason"] = finish
    return {"id": "c1", "created": 1, "model": "glm-5", "choices": [choice], **extra}


def sse(*chunks: dict | str, newline: str = "\n") -> bytes:
    parts = [
        f"data: {c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)}" for c in chunks
    ]
    return "".join(p + newline + newline for p in parts).encode()


USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
BASIC = sse(
    chunk({"role": "assistant", "reasoning_content": "Hmm."}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({"content": ""}, finish="stop", usage=USAGE),
    "[DONE]",
)


def test_basic_stream_gives_reasoning_content_finish_and_usage() -> None:
    events = parse(BASIC)
    assert events == [
        ReasoningDelta("Hmm."),
        ContentDelta("Hello"),
        ContentDelta(" world"),
        Finish("stop"),
        Usage(5, 7, 12),
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_line_endings(newline: str) -> None:
    raw = sse(chunk({"content": "a"}), chunk(finish="stop"), "[DONE]", newline=newline)
    events = parse(raw)
    assert content(events) == "a"
    assert finishes(events) == ["stop"]


def test_crlf_split_between_cr_and_lf() -> None:
    raw = sse(chunk({"content": "a"}), chunk({"content": "b"}, finish="stop"), newline="\r\n")
    cuts = [i + 1 for i, byte in enumerate(raw) if byte == ord("\r")]
    assert content(parse(raw, cuts)) == "ab"


def test_comments_and_keepalives_are_ignored_and_not_counted_as_data() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\n\n:\n\n: PING\r\n\r\n") == []
    assert parser.data_lines == 0
    parser.feed(b"data: " + json.dumps(chunk({"content": "x"})).encode() + b"\n\n")
    assert parser.data_lines == 1


def test_blank_lines_between_events_are_harmless() -> None:
    raw = b"\n\n\n" + sse(chunk({"content": "a"})) + b"\n\n\n" + sse(chunk(finish="stop"))
    assert content(parse(raw)) == "a"


def test_line_split_across_reads() -> None:
    raw = sse(chunk({"content": "split me"}), chunk(finish="stop"))
    assert content(parse(raw, [3, 10, 40])) == "split me"


def test_multibyte_utf8_split_inside_a_character() -> None:
    raw = sse(chunk({"content": "日本語 café"}), chunk(finish="stop"))
    first = raw.index("本".encode())
    events = parse(raw, [first + 1, first + 2])
    assert content(events) == "日本語 café"


@pytest.mark.parametrize("prefix", [b"data:", b"data: "])
def test_data_with_or_without_space(prefix: bytes) -> None:
    raw = prefix + json.dumps(chunk({"content": "x"}, finish="stop")).encode() + b"\n\n"
    assert content(parse(raw)) == "x"


def test_data_field_strips_only_one_space() -> None:
    raw = b'data:  {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
    assert content(parse(raw)) == "x"


def test_multi_line_data_event_is_joined() -> None:
    body = json.dumps(chunk({"content": "multi"}, finish="stop"), indent=1)
    raw = "".join(f"data: {line}\n" for line in body.splitlines()).encode() + b"\n"
    assert content(parse(raw)) == "multi"


def test_events_without_blank_line_separator_still_parse() -> None:
    raw = sse(chunk({"content": "a"})).rstrip(b"\n") + b"\n" + sse(chunk({"content": "b"}, "stop"))
    assert content(parse(raw)) == "ab"


def test_usage_only_final_chunk_with_empty_choices() -> None:
    raw = sse(chunk({"content": "a"}, finish="stop"), {"choices": [], "usage": USAGE}, "[DONE]")
    events = parse(raw)
    assert usages(events) == [Usage(5, 7, 12)]
    assert events[-2:] == [Finish("stop"), Usage(5, 7, 12)]


def test_usage_in_finish_chunk() -> None:
    raw = sse(chunk({"content": "a"}, finish="length", usage=USAGE), "[DONE]")
    assert usages(parse(raw)) == [Usage(5, 7, 12)]
    assert finishes(parse(raw)) == ["length"]


def test_usage_repeated_is_emitted_once_last_wins() -> None:
    later = {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}
    raw = sse(chunk({"content": "a"}, "stop", usage=USAGE), {"choices": [], "usage": later})
    assert usages(parse(raw)) == [Usage(5, 8, 13)]


def test_usage_null_is_ignored() -> None:
    raw = sse(chunk({"content": "a"}, usage=None), chunk(finish="stop", usage=None), "[DONE]")
    events = parse(raw)
    assert usages(events) == []
    assert content(events) == "a"


def test_usage_without_total_is_summed() -> None:
    raw = sse(chunk(finish="stop", usage={"prompt_tokens": 2, "completion_tokens": 3}))
    assert usages(parse(raw)) == [Usage(2, 3, 5)]


def test_missing_done_is_fine_after_a_finish_reason() -> None:
    events = parse(sse(chunk({"content": "a"}), chunk(finish="stop")))
    assert finishes(events) == ["stop"]


def test_done_without_finish_reason_finishes_as_stop() -> None:
    assert finishes(parse(sse(chunk({"content": "a"}), "[DONE]"))) == ["stop"]


def test_stream_cut_without_finish_or_done_raises_protocol_error() -> None:
    parser = SSEParser()
    assert content(parser.feed(sse(chunk({"content": "partial"})))) == "partial"
    with pytest.raises(ProtocolError) as caught:
        parser.close()
    assert caught.value.code == "upstream_protocol"


def test_repeated_finish_reason_is_emitted_once_last_wins() -> None:
    raw = sse(chunk({"content": "a"}, "stop"), chunk({"content": ""}, "length"), "[DONE]")
    assert finishes(parse(raw)) == ["length"]


def test_error_payload_mid_stream_raises_stream_error() -> None:
    parser = SSEParser()
    parser.feed(sse(chunk({"content": "a"})))
    error = {"error": {"message": "Backend failed, see https://status.example.com", "code": "x"}}
    with pytest.raises(StreamError) as caught:
        parser.feed(sse(error))
    assert "Backend failed" in caught.value.user_message
    assert "http" not in caught.value.user_message
    assert "example.com" not in caught.value.user_message


def test_malformed_json_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse(b'data: {"choices": [\n\n')


def test_malformed_json_after_good_events_keeps_them() -> None:
    parser = SSEParser()
    events = parser.feed(sse(chunk({"content": "a"}), chunk({"content": "b"})) + b"data: {]\n\n")
    assert content(events) == "ab"
    with pytest.raises(ProtocolError):
        parser.feed(b"")


def test_text_on_the_line_after_the_json_is_malformed() -> None:
    with pytest.raises(ProtocolError):
        parse(b'data: {"choices": []} trailing\n\n' + sse(chunk({"content": "a"}, "stop")))


def test_json_across_two_lines_is_not_one_data_field() -> None:
    # The second line is a field of its own (named "[]}"): the data is '{"choices":'.
    with pytest.raises(ProtocolError):
        parse(b'data: {"choices":\n[]}\n\n' + sse(chunk({"content": "a"}, "stop")))


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    raw = sse(chunk({"content": "a"})) + sse(chunk({"content": "b"}, "stop"))
    raw = raw.replace(b'"b"', b'"b\xff"')
    assert content(parse(raw)) == "ab\ufffd"


def test_one_line_events_and_others_mixed_keep_their_order() -> None:
    two_lines = b'data: {"choices": [{"delta":\ndata: {"content": "b"}}]}\n\n'
    raw = (
        sse(chunk({"content": "a"}))
        + two_lines
        + b": keep-alive\n\n"
        + sse(chunk({"content": "c"}), chunk({"content": "d"}, "stop"))
    )
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    assert content(events) == "abcd"
    assert parser.data_lines == 5


def test_non_sse_body_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse(b"<html><body>502 Bad Gateway</body></html>")


def test_event_id_and_retry_fields_are_ignored() -> None:
    raw = b"event: message\nid: 7\nretry: 100\n" + sse(chunk({"content": "a"}, "stop"))
    assert content(parse(raw)) == "a"


def test_reasoning_field_names() -> None:
    raw = sse(
        chunk({"reasoning_content": "glm "}),
        chunk({"reasoning": "gateway"}),
        chunk({"content": "answer"}, "stop"),
    )
    events = parse(raw)
    assert reasoning(events) == "glm gateway"
    assert content(events) == "answer"


def test_reasoning_content_wins_over_duplicate_reasoning_field() -> None:
    raw = sse(chunk({"reasoning_content": "once", "reasoning": "once"}, "stop"))
    assert reasoning(parse(raw)) == "once"


def test_think_tags_become_reasoning_even_split_across_chunks() -> None:
    raw = sse(
        chunk({"content": "<thi"}),
        chunk({"content": "nk>plan"}),
        chunk({"content": " more</th"}),
        chunk({"content": "ink>\n\nAnswer"}),
        chunk(finish="stop"),
    )
    events = parse(raw)
    assert reasoning(events) == "plan more"
    assert content(events) == "\n\nAnswer"


def test_think_tag_mentioned_mid_answer_stays_content() -> None:
    raw = sse(chunk({"content": "Use the <think> tag"}), chunk(finish="stop"))
    events = parse(raw)
    assert content(events) == "Use the <think> tag"
    assert reasoning(events) == ""


def test_no_empty_deltas_and_null_content() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"content": "", "reasoning_content": ""}),
        chunk({"content": "a"}, "stop"),
    )
    assert parse(raw) == [ContentDelta("a"), Finish("stop")]


def test_only_the_first_choice_counts() -> None:
    two = {
        "choices": [
            {"index": 0, "delta": {"content": "a"}},
            {"index": 1, "delta": {"content": "b"}},
        ]
    }
    assert content(parse(sse(two, chunk(finish="stop")))) == "a"


def test_data_after_done_is_ignored() -> None:
    raw = sse(chunk({"content": "a"}, "stop"), "[DONE]", chunk({"content": "late"}))
    assert content(parse(raw)) == "a"


# --- property: any split of a valid stream parses the same ----------------------


def _raw_utf8_stream() -> bytes:
    payloads: list[dict | str] = [
        chunk({"role": "assistant", "content": "<think>"}),
        chunk({"content": "Réfléchir 日本"}),
        chunk({"content": "</think>"}),
        chunk({"reasoning_content": " ok"}),
        chunk({"content": "Olá "}),
        chunk({"content": "naïve — café ✓"}),
        chunk({"content": ""}, "stop"),
        {"choices": [], "usage": USAGE},
        "[DONE]",
    ]
    return b": hi\r\n\r\n" + sse(*payloads, newline="\r\n")


RAW_UTF8 = _raw_utf8_stream()
WHOLE = parse(RAW_UTF8)


def test_property_stream_baseline() -> None:
    assert reasoning(WHOLE) == "Réfléchir 日本 ok"
    assert content(WHOLE) == "Olá naïve — café ✓"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(RAW_UTF8) - 1), max_size=40))
def test_any_split_parses_the_same(cut_points: list[int]) -> None:
    events = parse(RAW_UTF8, sorted(set(cut_points)))
    assert content(events) == content(WHOLE)
    assert reasoning(events) == reasoning(WHOLE)
    assert finishes(events) == finishes(WHOLE)
    assert usages(events) == usages(WHOLE)


def test_every_single_byte_split_parses_the_same() -> None:
    events = parse(RAW_UTF8, list(range(1, len(RAW_UTF8))))
    assert (content(events), reasoning(events)) == (content(WHOLE), reasoning(WHOLE))


# --- recorded streams from real providers --------------------------------------


def expected_outcome(name: str) -> tuple[str, str, list[str], list[Usage]]:
    want = EXPECTED[name]
    usage = want["usage"]
    return (
        want["content"],
        want["reasoning"],
        [want["finish_reason"]],
        [Usage(usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])],
    )


def outcome(events: list[Event]) -> tuple[str, str, list[str], list[Usage]]:
    return content(events), reasoning(events), finishes(events), usages(events)


RECORDINGS = sorted(path.stem for path in FIXTURES.glob("*.sse"))


def test_every_recording_has_an_expectation() -> None:
    assert RECORDINGS
    assert set(RECORDINGS) == set(EXPECTED)


@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_whole(name: str) -> None:
    raw = (FIXTURES / f"{name}.sse").read_bytes()
    assert outcome(parse(raw)) == expected_outcome(name)


@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_split(name: str) -> None:
    raw = (FIXTURES / f"{name}.sse").read_bytes()
    if len(raw) <= EVERY_BYTE_LIMIT:
        splits = [list(range(1, len(raw)))]
    else:
        rng = random.Random(name)
        splits = [sorted(rng.sample(range(1, len(raw)), len(raw) // 8)) for _ in range(3)]
    for cuts in splits:
        assert outcome(parse(raw, cuts)) == expected_outcome(name)


@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_with_crlf(name: str) -> None:
    raw = (FIXTURES / f"{name}.sse").read_bytes().replace(b"\n", b"\r\n")
    rng = random.Random(name)
    cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, 500)))
    assert outcome(parse(raw, cuts)) == expected_outcome(name)
