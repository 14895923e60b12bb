"""Usage and limits: the token ledger, per-person limits and budgets, and the figures
the usage pages show.

- ledger.py   the ledger a saved reply or title adds to (`record_reply`, `record_title`),
              and its rebuild from the messages
- policy.py   whose rules apply: a person's own limits, their groups' (most generous),
              the site's defaults; the models their groups allow
- limits.py   the check before a turn starts (tokens, replies, the money budget) and
              the cap on a reply's max tokens
- figures.py  a person's tokens and cost by period, day and model; every person's line
- reports.py  tokens and cost by person, group, model or day over a window (admin, CSV)
- chart.py    the usage pages' SVG bar chart

May import chat.models and the small shared rules (chat.text, chat.params), never
chat.turns or anything above it (an import-linter contract in pyproject.toml).
"""
