"""Each user message with a client id names its sender, so that one client id is
one turn per person (0007 adds the constraint); replies hold reserved tokens.

Earlier a client id was unique only within a conversation: two sockets sending
one frame at once could start it twice, in two new conversations. The later
copies keep their text and lose their client id (no frame can name them again).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery


def fill_senders(apps, schema_editor):
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    sent = Message.objects.exclude(client_id="")
    repeated = (
        sent.values("conversation__owner_id", "client_id")
        .annotate(copies=Count("id"))
        .filter(copies__gt=1)
        .order_by()
    )
    for key in repeated.iterator():
        copies = sent.filter(
            conversation__owner_id=key["conversation__owner_id"], client_id=key["client_id"]
        ).order_by("created_at", "id")
        later = list(copies.values_list("id", flat=True)[1:])
        Message.objects.filter(id__in=later).update(client_id="")
    owner = Conversation.objects.filter(id=OuterRef("conversation_id")).values("owner_id")[:1]
    sent.update(sender_id=Subquery(owner))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_message_client_id_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="reserved_tokens",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Tokens a reply may use (its prompt and max tokens), held against its "
                "owner's token limits while it streams; its saved usage replaces them "
                "(chat.usage.limits).",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="sender",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Who sent a user message with a client id: one client id is one turn "
                "each.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(fill_senders, migrations.RunPython.noop),
    ]
