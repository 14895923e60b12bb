"""Single sign-on in the admin: the accounts linked to the provider, and
nothing of allauth that the environment configures or this site never uses."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin

# The provider is configured by environment (GLMWEB_OIDC_*), tokens are not
# stored, and e-mail addresses match no account; Social accounts stay: each is
# a person's link to a subject at the provider, which an admin may add by
# hand for someone while sign-up is closed.
for model in (SocialApp, SocialToken, EmailAddress):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
