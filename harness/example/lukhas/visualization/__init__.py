"""Visualization helpers (graph export). Optional at runtime."""
