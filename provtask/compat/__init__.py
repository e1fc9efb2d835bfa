"""Migration aids for users of other workflow libraries."""
