"""Workers' heartbeats (chat.turns.heartbeat): how other workers tell a killed one within seconds."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_message_unique_sender_client_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="Worker",
            fields=[
                (
                    "id",
                    models.CharField(
                        help_text="The worker's GLMWEB_WORKER_ID.",
                        max_length=64,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("last_seen", models.DateTimeField(help_text="Its last heartbeat.")),
            ],
        ),
    ]
