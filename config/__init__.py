"""Configuration: typed settings (env ``HANZO_*``) and the error hierarchy.

The bottom layer: it imports no other hanzo.ml package.
"""

from hanzo.ml.config.errors import (
    ConfigError,
    HanzoError,
    IntegrityError,
    RegistryError,
    ServiceUnavailableError,
    ValidationError,
)
from hanzo.ml.config.settings import Settings

__all__ = [
    "ConfigError",
    "HanzoError",
    "IntegrityError",
    "RegistryError",
    "ServiceUnavailableError",
    "Settings",
    "ValidationError",
]
