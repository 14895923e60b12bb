"""What a group of people may use: its models and its limits (chat.usage.policy merges them)."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import models

from chat.models.catalog import ChatModel
from chat.models.usage import BUDGET_DIGITS, BUDGET_PLACES

PER_PERSON = "Per person in the group. Empty: not set by this group; 0: unlimited."


class GroupPolicy(models.Model):
    """A group's models and limits, each for every one of its members.

    A person in several groups gets the most generous value of each limit, and
    the union of their groups' models; their own limits (UserLimits) win.
    """

    group = models.OneToOneField(
        Group, on_delete=models.CASCADE, primary_key=True, related_name="policy"
    )
    allowed_models = models.ManyToManyField(
        ChatModel,
        blank=True,
        related_name="group_policies",
        help_text="The models its members may use. None chosen: every enabled model.",
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text=f"Tokens (prompt + completion) per day. {PER_PERSON}"
    )
    tokens_per_month = models.PositiveBigIntegerField(
        null=True, blank=True, help_text=f"Tokens per calendar month. {PER_PERSON}"
    )
    replies_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text=f"Replies started in any 60 seconds. {PER_PERSON}"
    )
    concurrent_generations = models.PositiveIntegerField(
        null=True, blank=True, help_text=f"Replies generating at the same time. {PER_PERSON}"
    )
    monthly_budget = models.DecimalField(
        max_digits=BUDGET_DIGITS,
        decimal_places=BUDGET_PLACES,
        null=True,
        blank=True,
        help_text=f"Money per calendar month, at the models' prices. {PER_PERSON}",
    )

    class Meta:
        verbose_name = "models and limits"
        verbose_name_plural = "models and limits"

    def __str__(self) -> str:
        return f"Models and limits of {self.group_id}"
