"""The team server's REST API under ``/api/v1``: ``create_app(project)`` builds it."""

from __future__ import annotations

from shipyard.server.api.app import create_app

__all__ = ["create_app"]
