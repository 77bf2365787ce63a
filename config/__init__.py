"""Configuration: typed settings (env ``HANZO_*``), the error hierarchy and the pipeline spec."""

from config.errors import (
    ConfigError,
    HanzoError,
    IntegrityError,
    RegistryError,
    ServiceUnavailableError,
    ValidationError,
)
from config.pipeline import PipelineSpec
from config.settings import Settings

__all__ = [
    "ConfigError",
    "HanzoError",
    "IntegrityError",
    "PipelineSpec",
    "RegistryError",
    "ServiceUnavailableError",
    "Settings",
    "ValidationError",
]
