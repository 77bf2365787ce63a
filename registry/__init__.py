"""Versioned model registry: snapshots with metadata, aliases with an append-only log, integrity, retention.

Every artifact is checked against its manifest's SHA-256 (and HMAC-SHA256 signature when the registry has a
key) before it is unpickled. Storage is pluggable behind :class:`ArtifactStorage`; the filesystem
implementation writes atomically and locks with ``fcntl``.
"""

from registry.gate import LOWER_IS_BETTER, GateDecision, evaluate_gate
from registry.reader import RegistryReader
from registry.records import AliasEvent, ModelVersion
from registry.registry import Registry
from registry.storage import ArtifactStorage, FileSystemStorage
from registry.versions import SemVer

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
