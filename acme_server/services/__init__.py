"""The ACME protocol's logic (RFC 8555): the views only translate HTTP to these calls and back."""
