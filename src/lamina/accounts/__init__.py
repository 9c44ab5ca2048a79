"""Accounts: additional credentials, each with its own 12-digit account id and its own resources.

``store.py`` is the durable list (``<data-dir>/accounts.json``) the CLI writes and the server
reads; ``tenant.py`` is one account's half of the platform; ``registry.py`` keeps the running
tenants in step with the file and routes each request to the account it acts on (see
docs/accounts.md).
"""
