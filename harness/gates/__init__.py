"""Quality gates: real tools run in the target repo, parsed into typed results."""
