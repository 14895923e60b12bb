from __future__ import annotations

from django.urls import path

from chat.web.views import conversations, dismissals, exports, feedback, pages, usage
from chat.web.views import settings as conversation_settings

app_name = "chat"

urlpatterns = [
    path("", pages.home, name="home"),
    path("c/<uuid:conversation_id>/", pages.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/delete/", conversations.delete_conversation, name="delete"),
    path("c/<uuid:conversation_id>/rename/", conversations.rename, name="rename"),
    path("c/<uuid:conversation_id>/pin/", conversations.pin, name="pin"),
    path("c/<uuid:conversation_id>/archive/", conversations.archive, name="archive"),
    path("c/<uuid:conversation_id>/export.json", exports.export_json, name="export_json"),
    path("c/<uuid:conversation_id>/export.md", exports.export_markdown, name="export_md"),
    path("conversations/", conversations.conversation_list, name="conversation_list"),
    path("conversations/search/", conversations.search, name="search"),
    path("conversations/import/", exports.import_conversations, name="import"),
    path("account/export/", exports.export_account, name="export_account"),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/feedback/",
        feedback.feedback,
        name="feedback",
    ),
    path(
        "announcements/<int:announcement_id>/dismiss/",
        dismissals.dismiss_announcement,
        name="dismiss_announcement",
    ),
    path("usage/", usage.usage_page, name="usage"),
    path("settings/", conversation_settings.new_chat_settings, name="new_chat_settings"),
    path(
        "c/<uuid:conversation_id>/settings/",
        conversation_settings.conversation_settings,
        name="settings",
    ),
    path("presets/", conversation_settings.create_preset, name="create_preset"),
    path(
        "presets/<int:preset_id>/delete/", conversation_settings.delete_preset, name="delete_preset"
    ),
]
