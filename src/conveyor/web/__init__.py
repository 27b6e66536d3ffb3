"""The web face of Conveyor: a REST API, a dashboard and Prometheus metrics, in
one ASGI application (``create_app``). ``conveyor dashboard`` serves it; an
application can mount it inside its own ASGI app. Needs the ``web`` extra:
``pip install "conveyor[web]"``."""

from conveyor.web.app import create_app
from conveyor.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
