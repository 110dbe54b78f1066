"""Embeddings: SimClusters (KnownFor / InterestedIn / post vectors); TwHIN and two-tower later."""

from foryou.embeddings.simclusters import SimClusters, SimClustersConfig

__all__ = ["SimClusters", "SimClustersConfig"]
