"""Embeddings: SimClusters (KnownFor / InterestedIn / post vectors) and the two-tower vectors' ANN retriever."""

from foryou.embeddings.simclusters import SimClusters

__all__ = ["SimClusters"]
