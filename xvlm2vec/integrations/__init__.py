"""Integrations with the tools embedding users already run (MTEB)."""
