from __future__ import annotations

from pathlib import Path

import pytest

from foryou.config import world_config
from foryou.data.world import World, generate_world


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return generate_world(world_config("tiny"), seed=1, preset="tiny")


@pytest.fixture(scope="session")
def tiny_world_dir(tiny_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worlds") / "tiny"
    tiny_world.write(out)
    return out
