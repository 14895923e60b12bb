from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

if TYPE_CHECKING:
    # The stubs' form is generic over the user model; Django's own class is not subscriptable.
    UserCreationFormBase = UserCreationForm[User]
else:
    UserCreationFormBase = UserCreationForm


class SignupForm(UserCreationFormBase):
    """Username and password; signing up never makes anyone staff or superuser."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)
