"""The model server: HTTP in front of ``shipyard.services.serving``."""
