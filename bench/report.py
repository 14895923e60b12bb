"""The results as a plain-text table: one row per figure, one column per backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], str], str]


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:+.1f}" if unit == "±ms" else f"{value:.1f}"
    return f"{value}{' ms' if unit in ('ms', '±ms') else unit}"


def _pair(data: dict[str, Any], *path: str, unit: str = "ms") -> str:
    both = _get(data, *path)
    if not both:
        return "-"
    return f"{_num(both['p50'], unit)} / {_num(both['p99'], unit)}"


def _delivery(data: dict[str, Any], scenario: str, side: str = "relay") -> str:
    relay = _get(data, scenario, side)
    if not relay:
        return "-"
    share = relay["tokens_delivered"] / relay["tokens_expected"] * 100
    return (
        f"{relay['tokens_delivered']}/{relay['tokens_expected']} ({share:.0f} %), "
        f"{relay['errors']} err"
    )


def _scenario_rows(scenario: str, label: str, side: str = "relay") -> list[Row]:
    return [
        (f"{label}: tokens delivered, errors", lambda d: _delivery(d, scenario, side), ""),
        (
            f"{label}: first token added p50 / p99",
            lambda d: _pair(d, scenario, side, "ttft_added_ms", unit="±ms"),
            "",
        ),
        (
            f"{label}: per-token latency added p50 / p99",
            lambda d: _pair(d, scenario, side, "token_latency_added_ms", unit="±ms"),
            "",
        ),
        (
            f"{label}: per-token latency p50 / p99 (relay | direct)",
            lambda d: (
                _pair(d, scenario, side, "token_latency_ms")
                + " | "
                + _pair(d, scenario, "direct", "token_latency_ms")
            ),
            "",
        ),
        (
            f"{label}: server CPU per token",
            lambda d: _num(_get(d, scenario, side, "cpu_us_per_token"), " µs"),
            "",
        ),
    ]


def rows(results: dict[str, Any]) -> list[Row]:
    some = next(iter(results["backends"].values()), {})
    counts = sorted(
        int(key.split("_")[1]) for key in some if key.startswith("streams_") and key[8:].isdigit()
    )
    out: list[Row] = [
        (
            "1 stream: first token added p50 / p99",
            lambda d: _pair(d, "first_token_1_stream", "relay", "ttft_added_ms", unit="±ms"),
            "p50 ≤ 5 ms",
        ),
        (
            "1 stream: first token p50 (relay | direct)",
            lambda d: (
                _num(_get(d, "first_token_1_stream", "relay", "ttft_ms", "p50"), "ms")
                + " | "
                + _num(_get(d, "first_token_1_stream", "direct", "ttft_ms", "p50"), "ms")
            ),
            "",
        ),
    ]
    targets = {
        "tokens delivered, errors": "100 %, 0 err",
        "first token added p50 / p99": "p99 ≤ 300 ms",
        "per-token latency p50 / p99 (relay | direct)": "p99 ≤ 100 ms",
        "server CPU per token": "≤ 60 µs",
    }
    for count in counts:
        for label, getter, _ in _scenario_rows(
            f"streams_{count}", f"{count} stream{'s' if count > 1 else ''}"
        ):
            target = next((t for k, t in targets.items() if label.endswith(k)), "")
            out.append((label, getter, target if count == 200 else ""))
        out.append(
            (
                f"{count} stream{'s' if count > 1 else ''}: server RSS per active stream",
                lambda d, c=count: _num(
                    _get(d, f"streams_{c}", "relay", "rss_kb_per_stream"), " KB"
                ),
                "",
            )
        )
        if _get(some, f"streams_{count}", "relay_burst2"):
            out += [
                (
                    f"{count} streams, next burst: tokens delivered, errors",
                    lambda d, c=count: _delivery(d, f"streams_{c}", "relay_burst2"),
                    "100 %, 0 err",
                ),
                (
                    f"{count} streams, next burst: first token added p50 / p99",
                    lambda d, c=count: _pair(
                        d, f"streams_{c}", "relay_burst2", "ttft_added_ms", unit="±ms"
                    ),
                    "no pool trap",
                ),
            ]
    out += [
        row for row in _scenario_rows("long_stream", "long stream") if "first token" not in row[0]
    ]
    out += [
        ("worker RSS idle", lambda d: _num(d.get("rss_idle_mb"), " MB"), "≤ 120 MB"),
        (
            "server RSS per idle socket",
            lambda d: (
                _num(_get(d, "idle_sockets", "kb_per_socket"), " KB")
                + f" ({_get(d, 'idle_sockets', 'sockets')} sockets)"
            ),
            "",
        ),
        (
            "queries per turn: 20 / 2,000-token reply (checkpoints)",
            lambda d: (
                f"{_get(d, 'queries', 'turn_20_tokens', 'queries')} "
                f"({_get(d, 'queries', 'turn_20_tokens', 'checkpoints')}) / "
                f"{_get(d, 'queries', 'turn_2000_tokens', 'queries')} "
                f"({_get(d, 'queries', 'turn_2000_tokens', 'checkpoints')})"
            ),
            "the same",
        ),
        (
            "open a long conversation: p50, queries",
            lambda d: (
                _get(d, "page", "error")
                or f"{_num(_get(d, 'page', 'p50_ms'), 'ms')}, {_get(d, 'page', 'queries')} queries"
                f" ({_get(d, 'page', 'messages')} msgs)"
            ),
            "bounded",
        ),
        (
            "leak check: RSS growth",
            lambda d: (
                f"{_num(_get(d, 'leak', 'growth_mb'), ' MB')} over {_get(d, 'leak', 'turns')} turns"
                if d.get("leak")
                else "-"
            ),
            "no growth",
        ),
        (
            "streams sustained, per-token p99 ≤ 250 ms",
            lambda d: _probe(d.get("probe")),
            "",
        ),
        (
            "… with two workers",
            lambda d: _probe(d.get("probe_two_workers")),
            "",
        ),
    ]
    return out


def _probe(probe: dict[str, Any] | None) -> str:
    if not probe:
        return "-"
    steps = ", ".join(
        f"{s['streams']}:{_num(s['token_latency_p99_ms'], 'ms')}{'' if s['ok'] else '✗'}"
        for s in probe["steps"]
    )
    return f"{probe['sustained_streams']} ({steps})"


def table(results: dict[str, Any]) -> str:
    backends = list(results["backends"])
    header = ["figure", *backends, "target (one worker)"]
    lines = [
        [label, *(getter(results["backends"][b]) for b in backends), target]
        for label, getter, target in rows(results)
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    text += [fmt(line) for line in lines]
    text += [f"note: {note}" for note in results.get("notes", [])]
    if results.get("profile"):
        text.append("")
        text.append(profile_text(results["profile"]))
    return "\n".join(text)


def profile_text(profile: dict[str, Any]) -> str:
    if profile.get("error"):
        return f"profile: {profile['error']}"
    lines = [
        f"profile of one worker on {profile.get('backend')} during a 200-stream burst"
        f" ({profile['samples']} samples, {profile.get('cpu_us_per_token')} µs/token):"
    ]
    lines.append("  by area (self time):")
    lines += [f"    {share:5.1f} %  {name}" for name, share in profile["areas"]]
    lines.append("  top functions (self time):")
    lines += [f"    {share:5.1f} %  {name}" for name, share in profile["self"][:15]]
    lines.append("  inclusive (own code and the calls it makes), largest first:")
    inclusive = [
        (name, share)
        for name, share in profile.get("inclusive", [])
        if "/chat/" in name or "channels/" in name or "daphne/" in name or "httpx/" in name
    ]
    lines += [f"    {share:5.1f} %  {name}" for name, share in inclusive[:15]]
    return "\n".join(lines)
