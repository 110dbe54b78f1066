"""The engine API for agent platforms (the specification's Python API): recommend, record_interaction,
add_content, follow / unfollow, train_models, create_experiment, get_experiment_results — sync, and
async as `a`-prefixed twins — with the platform's own ids (strings on datasets imported with them)."""

from foryou.api.platform import AgentPlatform, Feed

__all__ = ["AgentPlatform", "Feed"]
