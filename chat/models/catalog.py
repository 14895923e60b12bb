"""The models people may choose, with their prices: rows the admin edits.

Seeded from GLMWEB_MODELS when the table is empty (chat.apps, after migrate).
Pages and turn starts read the enabled rows once, as a chat.params.Catalog.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models

from chat.params import Catalog, Model, catalog_from_settings

PRICE_HELP = (
    "Money per million {} tokens, in the site's currency (GLMWEB_CURRENCY). Empty: unknown "
    "or free; its tokens then cost nothing on the usage pages and budgets."
)


class ChatModelQuerySet(models.QuerySet["ChatModel"]):
    def enabled(self) -> ChatModelQuerySet:
        return self.filter(enabled=True)

    def catalog(self) -> Catalog:
        """The enabled models, in the admin's order: one query."""
        return Catalog(tuple(row.as_model() for row in self.enabled().order_by("position", "id")))

    def seed(self, entries: list[dict[str, Any]]) -> int:
        """Rows for GLMWEB_MODELS, when there are none yet; how many were made."""
        if self.exists():
            return 0
        rows = [
            ChatModel(
                name=model.name,
                context_tokens=model.context_tokens,
                thinking=model.thinking,
                position=index,
            )
            for index, model in enumerate(catalog_from_settings(entries).models)
        ]
        self.bulk_create(rows, ignore_conflicts=True)
        return len(rows)


class ChatModel(models.Model):
    """A model people may choose, and what its tokens cost."""

    name = models.CharField(
        max_length=100, unique=True, help_text="The upstream's model id, sent in each request."
    )
    label = models.CharField(
        max_length=100, blank=True, help_text="The name people see. Empty: the model id."
    )
    context_tokens = models.PositiveIntegerField(
        default=128_000,
        help_text="Its context window in tokens: longer conversations send their newest turns.",
    )
    thinking = models.BooleanField(
        default=False, help_text="It takes GLM's thinking switch (the settings offer it)."
    )
    input_price_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=PRICE_HELP.format("prompt (input)"),
    )
    output_price_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=PRICE_HELP.format("completion (output)"),
    )
    enabled = models.BooleanField(
        default=True,
        help_text="Offered to people. Off: not offered, and replies with it are refused.",
    )
    position = models.PositiveIntegerField(
        default=0, help_text="Order in the model list, lowest first."
    )

    objects = ChatModelQuerySet.as_manager()

    class Meta:
        verbose_name = "model"
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.label} ({self.name})" if self.label else self.name

    def as_model(self) -> Model:
        return Model(
            name=self.name,
            context_tokens=self.context_tokens,
            thinking=self.thinking,
            label=self.label,
            input_price_per_million=self.input_price_per_million,
            output_price_per_million=self.output_price_per_million,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return self.as_model().cost(prompt_tokens, completion_tokens)
