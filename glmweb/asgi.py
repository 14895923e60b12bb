"""The ASGI entry point: Django's HTTP app, and the chat socket behind origin and auth checks.

The socket goes through the origin check, then channels' AuthMiddlewareStack
(the session and the user in its scope), then the router. The origin check is
glmweb.origins' (scheme, host and port, as Django's CSRF check), not channels'
AllowedHostsOriginValidator (the host alone).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glmweb.settings")
# Django must be set up before the consumer (and its models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.live.routing import websocket_urlpatterns  # noqa: E402
from glmweb.origins import OriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            # channels' stubs want URLRouter's patterns typed as its own private pattern type.
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
        ),
    }
)
