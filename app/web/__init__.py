"""The HTTP app."""

from app.web.application import create_app

__all__ = ["create_app"]
