"""The security middleware: who is asking (authentication), may they (RBAC), CSRF policy, headers.

Order in `MIDDLEWARE` matters and is documented in settings.py.
"""
