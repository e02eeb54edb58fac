"""Persistence: the metadata store and the artifact (blob) stores."""
