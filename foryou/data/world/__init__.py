"""The synthetic world: generator and ground truth."""

from foryou.data.world.generator import World, WorldGenerator, generate_world
from foryou.data.world.truth import GroundTruth, TruthParams

__all__ = ["GroundTruth", "TruthParams", "World", "WorldGenerator", "generate_world"]
