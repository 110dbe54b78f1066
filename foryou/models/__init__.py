"""Trained models: TwHIN graph embeddings and two-tower retrieval (torch; no I/O)."""

from foryou.models.twhin import TwHIN, train_twhin
from foryou.models.two_tower import TwoTower, train_two_tower

__all__ = ["TwHIN", "TwoTower", "train_twhin", "train_two_tower"]
