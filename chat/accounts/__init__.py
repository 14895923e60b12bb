"""Signing in from outside: single sign-on through an OpenID Connect provider
(django-allauth's social flow, with our adapters), the trusted-header sign-in
behind an authenticating proxy (Django's remote-user middleware and backend),
and the group membership both bring.

Sits beside chat.web and chat.admin: may import Django, allauth and
chat.models; nothing else of chat. The password login and sign-up views stay
in chat.web.
"""
