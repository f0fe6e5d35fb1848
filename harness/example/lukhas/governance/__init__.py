"""Governance: the consent ledger and its exports."""
