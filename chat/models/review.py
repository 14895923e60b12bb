"""What the admin side keeps: who opened whose conversation, and sign-ups to approve."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction

from chat.models.conversations import Conversation


class ConversationAccess(models.Model):
    """An admin opened someone else's conversation in the admin."""

    admin = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="conversation_accesses",
    )
    admin_username = models.CharField(max_length=150, help_text="Kept if the admin is deleted.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    owner_username = models.CharField(max_length=150, help_text="Kept if the owner is deleted.")
    conversation = models.ForeignKey(
        Conversation,
        null=True,
        on_delete=models.SET_NULL,
        related_name="accesses",
        help_text="Empty once the conversation is deleted.",
    )
    conversation_title = models.CharField(max_length=200, blank=True)
    content_shown = models.BooleanField(
        help_text="Whether the messages' text was shown (GLMWEB_ADMIN_CAN_READ_CONVERSATIONS)."
    )
    accessed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "conversation access"
        verbose_name_plural = "conversation accesses"
        ordering = ["-accessed_at"]

    def __str__(self) -> str:
        return f"{self.admin_username} opened {self.owner_username}'s conversation"


class SignupPolicy(models.TextChoices):
    """Who may create an account: by the sign-up form, single sign-on or a trusted proxy."""

    OPEN = "open", "anyone"
    APPROVAL = "approval", "anyone asks; an admin activates the account"
    CLOSED = "closed", "only admins create accounts"

    @classmethod
    def current(cls) -> SignupPolicy:
        """GLMWEB_SIGNUP; GLMWEB_SIGNUP_OPEN=false, the older switch, also closes it."""
        if not settings.GLMWEB_SIGNUP_OPEN:
            return cls.CLOSED
        return cls(settings.GLMWEB_SIGNUP)


class SignupApproval(models.Model):
    """An account created while sign-up needs approval; inactive until approved."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="signup_approval",
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Sign-up of user {self.user_id}"

    @classmethod
    def hold(cls, user: Any) -> SignupApproval:
        """Save a new account inactive, waiting for an admin: Django's login, the
        session and the chat socket all refuse inactive users, so nothing else
        must remember to."""
        with transaction.atomic():
            user.is_active = False
            user.save()
            return cls.objects.create(user=user)

    @classmethod
    def is_pending(cls, user: Any) -> bool:
        return cls.objects.filter(user=user, approved_at__isnull=True).exists()
