"""Token usage per person: a sortable page over the ledger, one person's page, a CSV export.

Usage figures are always shown, whether or not admins may read conversations.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.dateparse import parse_date

from chat.admin.readonly import ReadOnly
from chat.models import Conversation, DailyUsage
from chat.usage import chart, figures, limits, reports

User = get_user_model()
USAGE_PAGE_SIZE = 100

if TYPE_CHECKING:
    # The stubs' ModelAdmin is generic over its model; Django's own class is not subscriptable.
    UsageAdminBase = admin.ModelAdmin[DailyUsage]
else:
    UsageAdminBase = admin.ModelAdmin

# One total per window, so that every column fits a laptop screen beside the admin's
# sidebar; the prompt and completion split is in each figure's title, the person's page
# and the CSV.
COLUMNS = [
    ("user", "Person"),
    ("today", "Today"),
    ("week", "7 days"),
    ("month30", "30 days"),
    ("all", "All time"),
    ("conversations", "Chats"),
    ("replies", "Replies"),
    ("last_active", "Last active"),
    ("quota", "Limits used"),
]
TEXT_COLUMNS = {"user", "last_active"}


@admin.register(DailyUsage)
class UsageAdmin(ReadOnly, UsageAdminBase):
    """Token usage per person; the ledger's own rows are never edited by hand."""

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("export.csv", wrap(self.export_view), name="chat_dailyusage_export"),
            path("report/", wrap(self.report_view), name="chat_dailyusage_report"),
            path("report.csv", wrap(self.report_csv_view), name="chat_dailyusage_report_csv"),
            path("user/<int:user_id>/", wrap(self.user_view), name="chat_dailyusage_user"),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def _people(self, request: HttpRequest) -> tuple[list[figures.UserUsage], dict[str, Any]]:
        start = parse_date(request.GET.get("from", "") or "") if request.GET.get("from") else None
        end = parse_date(request.GET.get("to", "") or "") if request.GET.get("to") else None
        order = request.GET.get("o", "today")
        if order not in figures.SORT_KEYS:
            order = "today"
        descending = request.GET.get("dir", "desc" if order != "user" else "asc") == "desc"
        people = figures.all_users(start, end)
        people.sort(key=figures.SORT_KEYS[order], reverse=descending)
        return people, {"start": start, "end": end, "order": order, "descending": descending}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._require_view(request)
        people, state = self._people(request)
        page = Paginator(people, USAGE_PAGE_SIZE).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Token usage",
            "opts": self.model._meta,
            "page": page,
            "people": page.object_list,
            "columns": _sort_links(request, COLUMNS, state),
            "span_column": _sort_links(request, [("span", "In range")], state)[0],
            "totals": _totals(people),
            "query": request.GET.urlencode(),
            "today": limits.today(),
            "time_zone": timezone.get_current_timezone_name(),
            **state,
        }
        return TemplateResponse(request, "admin/chat/usage/index.html", context)

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        self._require_view(request)
        people, state = self._people(request)
        response = StreamingHttpResponse(_csv_lines(people, state), content_type="text/csv")
        name = f"glmweb-usage-{limits.today():%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def user_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        self._require_view(request)
        person = get_object_or_404(User, pk=user_id)
        days = figures.daily(user_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token usage of {person.get_username()}",
            "opts": self.model._meta,
            "person": person,
            "windows": figures.windows_for(user_id),
            "days": days,
            "day_rows": figures.day_rows(days),
            "chart": chart.chart(days),
            "models": figures.by_model(user_id),
            "limits": limits.status_for(user_id),
            "conversations": Conversation.objects.filter(owner_id=user_id).count(),
            "currency": settings.GLMWEB_CURRENCY,
        }
        return TemplateResponse(request, "admin/chat/usage/user.html", context)

    def _report(self, request: HttpRequest) -> tuple[reports.Report, Group | None]:
        group = None
        if (chosen := request.GET.get("group", "")).isdigit():
            group = Group.objects.filter(pk=int(chosen)).first()
        span = reports.Span.of(request.GET.get("window", "month"))
        by = request.GET.get("by", "person")
        return reports.report(by, span, group.pk if group else None), group

    def report_view(self, request: HttpRequest) -> HttpResponse:
        """Tokens and cost by person, group, model or day, over a window of days."""
        self._require_view(request)
        report, group = self._report(request)
        page = Paginator(report.lines, USAGE_PAGE_SIZE).get_page(request.GET.get("p"))
        query = request.GET.copy()
        query.pop("p", None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Tokens and cost" + (f" of group {group.name}" if group else ""),
            "opts": self.model._meta,
            "report": report,
            "page": page,
            "group": group,
            "groups": Group.objects.order_by("name"),
            "groupings": reports.GROUPINGS,
            "windows": reports.WINDOWS,
            "query": query.urlencode(),
            "currency": settings.GLMWEB_CURRENCY,
            "time_zone": timezone.get_current_timezone_name(),
        }
        return TemplateResponse(request, "admin/chat/usage/report.html", context)

    def report_csv_view(self, request: HttpRequest) -> StreamingHttpResponse:
        self._require_view(request)
        report, group = self._report(request)
        response = StreamingHttpResponse(_report_lines(report), content_type="text/csv")
        scope = f"-{group.name}" if group else ""
        name = f"glmweb-cost-by-{report.grouping}{scope}-{report.span.first:%Y-%m-%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{_safe_name(name)}"'
        return response


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _report_lines(report: reports.Report) -> Iterator[str]:
    """Each line's tokens and cost; the cost exact, as the ledger keeps it (to 1e-6)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(
        [report.grouping, "prompt_tokens", "completion_tokens", "total_tokens", "replies", "cost"]
    )
    for line in [*report.lines, report.total]:
        row = [line.key, line.prompt, line.completion, line.total, line.replies, line.cost]
        yield writer.writerow(_no_formulas(row))


def _sort_links(
    request: HttpRequest, columns: list[tuple[str, str]], state: dict[str, Any]
) -> list[dict[str, Any]]:
    links = []
    for key, label in columns:
        query = request.GET.copy()
        query.pop("p", None)
        query["o"] = key
        active = state["order"] == key
        query["dir"] = "asc" if active and state["descending"] else "desc"
        links.append(
            {
                "key": key,
                "label": label,
                "url": "?" + query.urlencode(),
                "active": active,
                "descending": state["descending"],
                "numeric": key not in TEXT_COLUMNS,
            }
        )
    return links


def _totals(people: list[figures.UserUsage]) -> dict[str, int]:
    return {
        "today": sum(p.windows.today.total for p in people),
        "week": sum(p.windows.week.total for p in people),
        "month30": sum(p.windows.month30.total for p in people),
        "all": sum(p.windows.all_time.total for p in people),
        "estimated": sum(p.windows.estimated_tokens for p in people),
        "replies": sum(p.windows.replies for p in people),
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(people: list[figures.UserUsage], state: dict[str, Any]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    header = ["user_id", "username", "active"]
    for window in ("today", "7d", "30d", "all_time"):
        header += [f"{window}_prompt", f"{window}_completion", f"{window}_total"]
    span = state["start"] or state["end"]
    if span:
        header += ["range_prompt", "range_completion", "range_total", "range_replies"]
    header += [
        "estimated_tokens",
        "estimated_replies",
        "conversations",
        "replies",
        "last_active",
        "quota_day_percent",
        "quota_month_percent",
    ]
    yield writer.writerow(header)
    for p in people:
        w = p.windows
        row: list[Any] = [p.user_id, p.username, p.is_active]
        for tokens in (w.today, w.week, w.month30, w.all_time):
            row += [tokens.prompt, tokens.completion, tokens.total]
        if span and w.span is not None:
            row += [w.span.prompt, w.span.completion, w.span.total, p.span_replies]
        row += [
            w.estimated_tokens,
            w.estimated_replies,
            p.conversations,
            w.replies,
            p.last_active.isoformat() if p.last_active else "",
            "" if p.day_quota is None else p.day_quota,
            "" if p.month_quota is None else p.month_quota,
        ]
        yield writer.writerow(_no_formulas(row))


def _no_formulas(row: list[Any]) -> list[Any]:
    # A username like "=HYPERLINK(...)" must not become a formula in a spreadsheet.
    return [f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]
