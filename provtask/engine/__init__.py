"""The engine: runs DAGs on Dask pools and records provenance (see ``runner``)."""
