"""Closed-loop simulation: the world's users served by the engine, acting by the ground truth."""

from foryou.config import SimulationConfig
from foryou.simulation.runner import Simulation, SimulationResult

__all__ = ["Simulation", "SimulationConfig", "SimulationResult"]
