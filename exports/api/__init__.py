"""The HTTP API (/api/v1/). See endpoints.py, and docs/api.md for users."""
