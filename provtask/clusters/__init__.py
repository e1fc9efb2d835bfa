"""Partitions from a clusters file (``clusters.yaml``), each run by its own Dask cluster."""

from .config import ClustersConfig, PartitionConfig, load_clusters, parse_clusters
from .jobqueue import cluster_kwargs, job_class, job_script, make_cluster
from .locate import find_clusters_file

__all__ = [
    "ClustersConfig",
    "PartitionConfig",
    "cluster_kwargs",
    "find_clusters_file",
    "job_class",
    "job_script",
    "load_clusters",
    "make_cluster",
    "parse_clusters",
]
