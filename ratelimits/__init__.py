"""Shared attempt counters for the rate limits (`pki_project.ratelimit`), when no shared cache is configured."""
