"""Changelist cells that keep a table inside a laptop screen: long names end in an
ellipsis (the whole name in their title, static/chat/admin.css cuts them), limits as
short right-aligned figures."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString


def ellipsized(text: str) -> SafeString:
    return format_html('<span class="cell-ellipsis" title="{}">{}</span>', text, text)


def limit(value: int | Decimal | None) -> SafeString:
    """A limit as a figure: empty means the groups' or the site's value, 0 means none."""
    if value is None:
        shown = format_html('<span class="cell-quiet" title="{}">default</span>', DEFAULT)
    elif not value:
        shown = format_html("{}", "unlimited")
    else:
        shown = format_html("{}", number_format(value, force_grouping=True))
    return format_html('<span class="cell-num">{}</span>', shown)


DEFAULT = "their groups' value, or the site's"


def limit_column(field: str, description: str) -> Callable[[Any, Any], SafeString]:
    """A ModelAdmin column showing one limit field as a figure, sortable by it."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, row: Any) -> SafeString:
        return limit(getattr(row, field))

    return column
