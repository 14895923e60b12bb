from django.urls import path

from chat.live.consumer import ChatConsumer

websocket_urlpatterns = [
    # django-stubs' path() expects a Django view; channels' URLRouter takes an ASGI app.
    path("ws/chat/", ChatConsumer.as_asgi()),  # type: ignore[arg-type]
]
