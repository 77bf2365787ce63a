"""Configuration: typed settings (env ``HANZO_*``), the error hierarchy and shipped pipelines."""

from config.errors import (
    ConfigError,
    HanzoError,
    IntegrityError,
    RegistryError,
    ServiceUnavailableError,
    ValidationError,
)
from config.settings import Settings

__all__ = [
    "ConfigError",
    "HanzoError",
    "IntegrityError",
    "RegistryError",
    "ServiceUnavailableError",
    "Settings",
    "ValidationError",
]
