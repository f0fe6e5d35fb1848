"""harness: guarded, gate-checked, recorded LLM cleanup runs for Python repositories."""

__version__ = "0.1.0"
