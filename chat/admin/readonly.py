"""For the admin's pages that only show: nobody adds, changes or deletes here."""

from __future__ import annotations

from django.http import HttpRequest


class ReadOnly:
    """Put first among the bases, before the ModelAdmin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
