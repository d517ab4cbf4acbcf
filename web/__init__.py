"""The web applications for people: the customer app (/app/) and the admin panel (/admin/), server-rendered, on
the platform's public REST API only (a backend-for-frontend: see web/client.py). `create_app(api_base_url)`."""

from web.app import create_app

__all__ = ["create_app"]
