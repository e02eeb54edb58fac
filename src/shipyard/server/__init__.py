"""HTTP servers in front of the services."""
