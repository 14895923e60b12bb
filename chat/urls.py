from django.urls import path

from chat import accounts, conversation_settings, feedback, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/delete/", views.delete_conversation, name="delete"),
    path("c/<uuid:conversation_id>/rename/", views.rename, name="rename"),
    path("c/<uuid:conversation_id>/pin/", views.pin, name="pin"),
    path("c/<uuid:conversation_id>/archive/", views.archive, name="archive"),
    path("c/<uuid:conversation_id>/export.json", views.export_json, name="export_json"),
    path("c/<uuid:conversation_id>/export.md", views.export_markdown, name="export_md"),
    path("conversations/", views.conversation_list, name="conversation_list"),
    path("conversations/search/", views.search, name="search"),
    path("conversations/import/", views.import_conversations, name="import"),
    path("account/export/", views.export_account, name="export_account"),
    path(
        "c/<uuid:conversation_id>/m/<uuid:message_id>/feedback/",
        feedback.feedback,
        name="feedback",
    ),
    path("usage/", accounts.usage_page, name="usage"),
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
