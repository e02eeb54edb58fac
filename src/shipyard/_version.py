"""The package version, read by hatchling and by ``shipyard --version``."""

__version__ = "0.1.0"
