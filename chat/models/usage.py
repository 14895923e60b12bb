"""A person's limits, and the ledger of the tokens they spent."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# Money: budgets up to 10^10 to the cent; ledger costs to a millionth (a token's price).
BUDGET_DIGITS, BUDGET_PLACES = 12, 2
COST_DIGITS, COST_PLACES = 14, 6
OWN = "Empty: their groups' or the site default; 0: unlimited."


class UserLimits(models.Model):
    """One person's limits. Empty means their groups' or the site default; 0 means unlimited.

    The row is also the lock that serialises a person's turn starts: see
    chat.usage.limits.check_turn.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="limits",
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=f"Tokens (prompt + completion) per calendar day. {OWN}",
    )
    tokens_per_month = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=f"Tokens per calendar month. {OWN}",
    )
    replies_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=f"Replies started in any 60 seconds. {OWN}",
    )
    concurrent_generations = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=f"Replies generating at the same time. {OWN}",
    )
    monthly_budget = models.DecimalField(
        max_digits=BUDGET_DIGITS,
        decimal_places=BUDGET_PLACES,
        null=True,
        blank=True,
        help_text=f"Money per calendar month, at the models' prices. {OWN}",
    )

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"

    def __str__(self) -> str:
        return f"Limits of user {self.user_id}"


class DailyUsage(models.Model):
    """Tokens one person spent on one day with one model: the usage ledger.

    Written by chat.usage.ledger.record_reply as each reply is saved, so it keeps the
    figures of conversations deleted since (their tokens were spent all the
    same), and the usage pages and limit checks read a few hundred rows
    instead of every message.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField(help_text="The reply's creation day, in the site's time zone.")
    model = models.CharField(max_length=100)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)
    estimated_total_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Part of total_tokens estimated here (the upstream sent no usage)."
    )
    estimated_replies = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(
        max_digits=COST_DIGITS,
        decimal_places=COST_PLACES,
        default=0,
        help_text="What these tokens cost at the model's prices when each reply was saved.",
    )

    class Meta:
        verbose_name = "token usage"
        verbose_name_plural = "token usage"
        constraints = [
            # One row per person, day and model; record_reply adds to it. Its index
            # (user, day, ...) also answers a person's month (check_turn, the usage
            # page) and a group's members over a window (chat.usage.reports).
            models.UniqueConstraint(fields=["user", "day", "model"], name="usage_user_day_model"),
        ]
        indexes = [
            # The usage page's windows over all users (today, 7 and 30 days).
            models.Index(fields=["day"], name="usage_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.model}: {self.total_tokens}"
