"""The error hierarchy: one root, typed subclasses, messages that say what to do."""

from __future__ import annotations


class HanzoError(Exception):
    """Root of every error hanzo-ml raises on purpose."""


class ConfigError(HanzoError):
    """A setting, a pipeline spec or a feature definition is invalid."""


class ServiceUnavailableError(HanzoError):
    """A service (Kafka broker, Redis) could not be reached at the stated address."""


class ValidationError(HanzoError):
    """An event failed validation; the message names the field and the value."""


class RegistryError(HanzoError):
    """A registry operation failed (unknown model or version, integrity check, bad name)."""


class IntegrityError(RegistryError):
    """An artifact's checksum or signature does not match: it is never unpickled."""
