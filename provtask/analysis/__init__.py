"""Analyses of the provenance store: what a run did with the time it was given."""

from .efficiency import efficiency

__all__ = ["efficiency"]
