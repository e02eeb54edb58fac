"""Domain records and rules: frozen dataclasses, no I/O."""
