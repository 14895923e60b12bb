from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django's own texts, said in fewer words; the password's rules stay its validators' own.
        self.fields["username"].help_text = "Letters, digits and @ . + - _ only."
        self.fields["password2"].help_text = "The same password again."

    def validate_password_for_user(
        self, user: Any, password_field_name: str = "password1", **kwargs: Any
    ) -> None:
        # Django reports "too short" or "too common" under the confirmation field;
        # the rules are about the password itself, so they go beside it. (Django
        # 5.1's SetPasswordMixin has the hook; django-stubs 6.1 doesn't know it yet.)
        validate = super().validate_password_for_user  # type: ignore[misc]
        validate(user, password_field_name=password_field_name, **kwargs)
