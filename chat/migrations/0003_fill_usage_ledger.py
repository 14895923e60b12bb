"""Fill the usage ledger from the replies saved before it existed."""

from django.db import migrations
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate


def fill_ledger(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    DailyUsage = apps.get_model("chat", "DailyUsage")
    rows = (
        Message.objects.filter(role="assistant", total_tokens__isnull=False)
        .annotate(day=TruncDate("updated_at"))
        .values("conversation__owner_id", "day", "model")
        .annotate(
            prompt=Sum("prompt_tokens", default=0),
            completion=Sum("completion_tokens", default=0),
            total=Sum("total_tokens", default=0),
            replies=Count("id"),
            estimated_total=Sum("total_tokens", filter=Q(usage_estimated=True), default=0),
            estimated_replies=Count("id", filter=Q(usage_estimated=True)),
        )
        .order_by()
    )
    DailyUsage.objects.bulk_create(
        (
            DailyUsage(
                user_id=row["conversation__owner_id"],
                day=row["day"],
                model=row["model"],
                prompt_tokens=row["prompt"],
                completion_tokens=row["completion"],
                total_tokens=row["total"],
                replies=row["replies"],
                estimated_total_tokens=row["estimated_total"],
                estimated_replies=row["estimated_replies"],
            )
            for row in rows.iterator(chunk_size=5000)
        ),
        batch_size=5000,
    )


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_admin_usage_limits_review")]

    operations = [migrations.RunPython(fill_ledger, migrations.RunPython.noop)]
