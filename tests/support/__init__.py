"""Helpers shared by the integration tests: real agent processes and serving-overlap checks."""
