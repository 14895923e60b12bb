# Apart from 0006: on PostgreSQL its updates leave deferred foreign key checks
# pending, and a table with pending checks can't be altered in that transaction.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_message_sender_reserved_tokens"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="message",
            name="msg_unique_client_id",
        ),
        migrations.RemoveIndex(
            model_name="message",
            name="msg_client_id",
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(("sender__isnull", False)),
                fields=("sender", "client_id"),
                name="msg_unique_sender_client_id",
            ),
        ),
    ]
