"""Usage and limits: the token ledger, per-person limits and budgets, and the figures
the usage pages show.

- ledger.py   the ledger a saved reply or title adds to (`record_reply`, `record_title`),
              and its rebuild from the messages
- limits.py   the limits in force for a person and the check before a turn starts
- figures.py  a person's tokens by period, day and model; every person's usage line
- chart.py    the usage pages' SVG bar chart

May import chat.models and the small shared rules (chat.text, chat.params), never
chat.turns or anything above it (an import-linter contract in pyproject.toml).
"""
