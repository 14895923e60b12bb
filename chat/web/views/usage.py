"""A person's usage page: their own tokens and limits, never anyone else's."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from chat.usage import chart, figures, limits
from chat.web.views.access import AuthenticatedHttpRequest


@never_cache
@login_required
def usage_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    user_id = request.user.pk
    days = figures.daily(user_id)
    context = {
        "windows": figures.windows_for(user_id),
        "days": days,
        "day_rows": figures.day_rows(days),
        "chart": chart.chart(days),
        "models": figures.by_model(user_id),
        "limits": limits.status_for(user_id),
        "admins_can_read": settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS,
        "currency": settings.GLMWEB_CURRENCY,
    }
    return render(request, "chat/usage.html", context)
