"""The Django admin, one module per area; importing them registers their ModelAdmins.

- conversations.py  conversation review (read-only, audited) and the access log
- usage.py          token usage per person, one person's page, the CSV export
- users.py          per-person limits and the user list (limits inline, usage link)
- signups.py        sign-ups waiting for approval and the approve action
- sign_on.py        of allauth's models, only the links to the SSO provider

May import chat.turns, chat.usage, chat.models and chat.text/markdown/params;
never chat.live or chat.web.
"""

from chat.admin import conversations, sign_on, signups, usage, users

__all__ = ["conversations", "sign_on", "signups", "usage", "users"]
