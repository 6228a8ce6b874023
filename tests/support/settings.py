"""Settings for tests that need production mode: everything production insists on, set."""

from __future__ import annotations

from trisails import Settings


def production_settings() -> Settings:
    """Production mode with a session secret and every origin allowed on purpose, as a deployed app has."""
    settings = Settings(environment="production")
    settings.session.secret = "a test secret, long and random enough for nobody to guess it"
    settings.sockets.only_allow_origins = ("*",)
    return settings
