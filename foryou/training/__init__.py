"""Training and the model registry (versioned artifacts without pickle, promotion, rollback)."""

from foryou.training.registry import MODEL_SCHEMA_VERSION, ModelRegistry, ModelVersion, RegistryError

__all__ = ["MODEL_SCHEMA_VERSION", "ModelRegistry", "ModelVersion", "RegistryError"]
