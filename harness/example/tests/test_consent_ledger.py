from datetime import datetime, timezone

from lukhas.governance.consent_ledger_impl import ConsentLedger

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_grant_then_revoke():
    ledger = ConsentLedger()
    ledger.grant("alice", "research", when=T0)
    assert ledger.is_granted("alice", "research", now=T0)
    ledger.revoke("alice", "research", when=T0)
    assert not ledger.is_granted("alice", "research", now=T0)
    assert len(ledger) == 2


def test_chain_verifies():
    ledger = ConsentLedger()
    ledger.grant("bob", "analytics", when=T0)
    ledger.grant("carol", "analytics", when=T0)
    assert ledger.verify_chain()
