"""Versioned model registry: snapshots with metadata, aliases with an append-only log, integrity, retention.

Every artifact is checked against its manifest's SHA-256 (and HMAC-SHA256 signature when the registry has a
key) before it is unpickled. Storage is pluggable behind :class:`ArtifactStorage`; the filesystem
implementation writes atomically and locks with ``fcntl``.
"""

from hanzo.ml.registry.gate import LOWER_IS_BETTER, GateDecision, evaluate_gate
from hanzo.ml.registry.reader import RegistryReader
from hanzo.ml.registry.records import AliasEvent, ModelVersion
from hanzo.ml.registry.registry import Registry
from hanzo.ml.registry.storage import ArtifactStorage, FileSystemStorage
from hanzo.ml.registry.versions import SemVer

__all__ = [
    "LOWER_IS_BETTER",
    "AliasEvent",
    "ArtifactStorage",
    "FileSystemStorage",
    "GateDecision",
    "ModelVersion",
    "Registry",
    "RegistryReader",
    "SemVer",
    "evaluate_gate",
]
