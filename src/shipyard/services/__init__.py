"""The use cases: plain Python services that the SDK, the CLI and the server call."""
