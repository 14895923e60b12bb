from django.urls import path

from chat import accounts, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/delete/", views.delete_conversation, name="delete"),
    path("usage/", accounts.usage_page, name="usage"),
]
