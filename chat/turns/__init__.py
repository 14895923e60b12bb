"""A chat turn: from a person's send to the saved reply, and what follows it.

- starting: begin_send, begin_regenerate, begin_edit, begin_continue,
  switch_branch, and their refusals (TurnRefused);
- batching: sends that arrive together start together;
- context: token estimates, the context budget, the request sent;
- runner: TurnRunner streams a turn in its own task and publishes its events;
- saving: checkpoints of the text, and the reply saved at its end;
- control: conversation and control groups, and the messages sockets send a
  turn on another worker (stop, snapshot, unfollow);
- relay: a turn's events to this process's sockets, without the channel layer;
- recovery: replies a restarted worker left streaming;
- heartbeat: which workers are alive;
- titles: the model names a conversation after its first reply;
- config: the upstream client's settings.

May import chat.models, chat.usage, chat.upstream, chat.text, chat.params and
chat.markdown; never chat.live, chat.web or chat.admin. Nothing is re-exported
here: import the module you need (``from chat.turns import starting``).
"""
