"""Core services: memory storage and time helpers. Nothing here may import the UI layers."""
