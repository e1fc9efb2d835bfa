"""The version of provtask (also in pyproject.toml)."""

__version__ = "0.1.0"
