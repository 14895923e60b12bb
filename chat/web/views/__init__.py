"""The HTTP views, one module per area: small typed functions behind `login_required`
(and `require_POST` where they change something). Every conversation or reply is looked
up through its owner (access.py), so anything not yours is a 404.

- pages.py          the chat page (a new chat or one conversation)
- conversations.py  the sidebar's JSON: more of the list, search, rename, pin, archive, delete
- settings.py       a conversation's settings and the person's presets
- feedback.py       thumbs up/down and a comment on a reply
- dismissals.py     a person closes an announcement banner
- exports.py        export a conversation or an account; import chats
- usage.py          a person's own usage page
- accounts.py       sign-up (open, approval, closed) and the throttled login
- health.py         /healthz
- access.py         the signed-in request type and the owner lookups

May import chat.turns, chat.usage, chat.models and chat.text/markdown/params;
never chat.live or chat.admin.
"""
