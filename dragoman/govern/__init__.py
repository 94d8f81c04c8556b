"""Governance: virtual keys (hashed at rest), roles and model allow-lists, budgets in USD and rate limits, with
their state in memory (one instance) or shared on PostgreSQL and Redis (many instances)."""
