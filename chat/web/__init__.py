"""The web pages and their JSON views: everything a person's browser asks over HTTP
(the chat socket is chat.live, the admin chat.admin).

- views/       the views, one module per area (see views/__init__.py)
- urls.py      the app's URLs (glmweb/urls.py adds accounts, the admin and /healthz)
- sidebar.py   a person's list of conversations: pages, date groups, search, rename/pin/archive
- transcript.py  reading a conversation for the page
- exporting.py   export to JSON/Markdown, import of ours or ChatGPT's JSON
- forms.py, context_processors.py

May import chat.turns, chat.usage, chat.models and the small shared rules
(chat.text, chat.markdown, chat.params); never chat.live or chat.admin.
"""
