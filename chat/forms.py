from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """Username and password; signing up never makes anyone staff or superuser."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)
