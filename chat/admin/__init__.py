"""The Django admin, one module per area; importing them registers their ModelAdmins.

- conversations.py  conversation review (read-only, audited) and the access log
- usage.py          token usage per person, one person's page, the CSV export; the
                    report of tokens and cost by person, group, model or day
- models.py         the models people may choose, with their prices
- groups.py         groups with their models and limits (the policy inline)
- users.py          per-person limits and the user list (limits inline, usage link)
- signups.py        sign-ups waiting for approval and the approve action
- sign_on.py        of allauth's models, only the links to the SSO provider
- announcements.py  banners for the chat page: audience, dates, dismissals, a preview
- examples.py       the example prompts a new chat offers

May import chat.turns, chat.usage, chat.models and chat.text/markdown/params;
never chat.live or chat.web.
"""

from chat.admin import (
    announcements,
    conversations,
    examples,
    groups,
    models,
    sign_on,
    signups,
    usage,
    users,
)

__all__ = [
    "announcements",
    "conversations",
    "examples",
    "groups",
    "models",
    "sign_on",
    "signups",
    "usage",
    "users",
]
