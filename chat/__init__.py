"""glmweb's chat app, one package per concern (docs/architecture.md).

From the top down; a package imports only from the layers below it, as the
import-linter contracts in pyproject.toml check:

- ``chat.live``, ``chat.web``, ``chat.admin``: the chat socket, the HTTP pages and
  the Django admin; independent of each other.
- ``chat.turns``: a chat turn, from the send to the saved reply; titles; recovery.
- ``chat.usage``: the usage ledger, limits and the usage figures.
- ``chat.models``: the data, with its domain rules as model and QuerySet methods.
- ``chat.upstream``: the provider client on httpx; nothing of Django.
- ``chat.text``, ``chat.markdown``, ``chat.params``: small rules every layer shares.
"""
