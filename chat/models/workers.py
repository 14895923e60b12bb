"""Worker processes and their heartbeats."""

from __future__ import annotations

from django.db import models


class Worker(models.Model):
    """A worker process's heartbeat, written every few seconds while it streams replies.

    Other workers read it to tell a reply that is slow from one whose worker
    was killed (chat.turns.heartbeat).
    """

    id = models.CharField(
        primary_key=True, max_length=64, help_text="The worker's GLMWEB_WORKER_ID."
    )
    last_seen = models.DateTimeField(help_text="Its last heartbeat.")

    def __str__(self) -> str:
        return f"{self.id} (seen {self.last_seen:%Y-%m-%d %H:%M:%S})"
