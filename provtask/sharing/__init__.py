"""Sharing runs: provenance archives, Workflow Run RO-Crates and W3C PROV (docs/sharing.md)."""
