"""Live delivery to sockets: the chat WebSocket and what keeps it honest.

- consumer.py       ChatConsumer: takes a socket's frames to the turn, forwards the
                    turn's numbered events; owns the tasks it starts
- frames.py         a frame parsed and checked (ids, content, sizes); FrameError
- sessions.py       the socket's login, rechecked on its frames (logout, deactivation)
- socket_counts.py  sockets per person, counted across workers (Redis)
- liveness.py       sockets following a turn on a worker that died hear its end
- routing.py        the socket's URL, for glmweb/asgi.py

The user comes from channels' AuthMiddlewareStack (glmweb/asgi.py). May import
chat.turns, chat.usage, chat.models and the small shared rules (chat.text,
chat.params); never chat.web or chat.admin (an import-linter contract in
pyproject.toml).
"""
