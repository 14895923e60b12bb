"""A person closes an announcement banner; it stays closed on every device they use."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_POST

from chat.models import Announcement
from chat.web.views.access import AuthenticatedHttpRequest


@require_POST
@login_required
def dismiss_announcement(request: AuthenticatedHttpRequest, announcement_id: int) -> HttpResponse:
    """Always for the signed-in person: nothing in the request names whose dismissal it is."""
    try:
        announcement = Announcement.objects.addressed_to(request.user).get(pk=announcement_id)
    except Announcement.DoesNotExist:
        raise Http404("No such announcement") from None
    announcement.dismiss_for(request.user)
    return HttpResponse(status=204)
