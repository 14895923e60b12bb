"""Old and new trees interleaved: the way a change is judged on a shared machine.

    .venv/bin/python -m bench.pairs OLD_TREE NEW_TREE [--rounds 3] [--backends sqlite]

Each round runs `python -m bench` once in each tree (A then B, then B then A in the
next round, so neither always goes first), 200 streams, no probe, a short leak check;
then prints each tree's medians of the headline figures. A tree is a checkout (for
example `git worktree add /tmp/old <commit>`); both run on this venv's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUN_ARGS = ["--concurrency", "1,200", "--no-probe", "--leak-turns", "10", "--long-tokens", "1000"]
BACKEND_KEYS = {"sqlite": "sqlite+memory", "postgres": "postgres+redis"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    figures: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for round_number in range(args.rounds):
        order = ["old", "new"] if round_number % 2 == 0 else ["new", "old"]
        for name in order:
            result = run_bench(trees[name], args.backends)
            for backend in args.backends.split(","):
                row = headline(result["backends"][BACKEND_KEYS[backend]])
                row["backend"] = backend  # type: ignore[assignment]
                figures[name].append(row)
                print(f"round {round_number + 1} {name} {backend}: {row}", file=sys.stderr)
    print_medians(figures, args.backends.split(","))


def run_bench(tree: Path, backends: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, "-m", "bench", "--backends", backends, *RUN_ARGS]
        subprocess.run(
            [*command, "--json", output.name], cwd=tree, env=env, check=True, stdout=sys.stderr
        )
        return json.loads(Path(output.name).read_text())


def headline(backend: dict[str, Any]) -> dict[str, float]:
    burst = backend["streams_200"]
    relay, again = burst["relay"], burst.get("relay_burst2", {})
    return {
        "delivered_pct": 100 * relay["tokens_delivered"] / relay["tokens_expected"],
        "errors": relay["errors"] + again.get("errors", 0),
        "cpu_us_per_token": relay["cpu_us_per_token"],
        "first_token_added_p99_ms": relay["ttft_added_ms"]["p99"],
        "token_latency_p99_ms": relay["token_latency_ms"]["p99"],
        "rss_idle_mb": backend["rss_idle_mb"],
    }


def print_medians(figures: dict[str, list[dict[str, float]]], backends: list[str]) -> None:
    print("| backend | figure | old | new |")
    print("|---|---|---|---|")
    for backend in backends:
        rows = {
            name: [r for r in runs if r["backend"] == backend] for name, runs in figures.items()
        }
        for key in rows["old"][0]:
            if key == "backend":
                continue
            old = statistics.median(r[key] for r in rows["old"])
            new = statistics.median(r[key] for r in rows["new"])
            print(f"| {backend} | {key} | {old:g} | {new:g} |")


if __name__ == "__main__":
    main()
