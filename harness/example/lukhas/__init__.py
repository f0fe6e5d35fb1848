"""LUKHAS: consent-aware memory and governance primitives."""

__version__ = "0.4.2"

__all__ = ["__version__"]
