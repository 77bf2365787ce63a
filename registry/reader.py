"""Read side of the registry: resolve names and aliases, describe versions, load verified artifacts.

Layout under the storage root (one folder per model; a version exists once its manifest is written)::

    models/<name>/versions/<version>/model.pkl       pickle protocol 5
    models/<name>/versions/<version>/manifest.json   sha256, size, metadata, optional HMAC signature
    models/<name>/aliases.json                       {"production": "1.2.3+snap.000042", ...}
    models/<name>/history.jsonl                      alias log, one AliasEvent per line, append-only
    models/<name>/snapshot_seq                       last snapshot sequence handed out
    .locks/<name>.lock                               fcntl lock taken by every write to the model
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.config.settings import Settings
from hanzo.ml.registry.history import parse_history
from hanzo.ml.registry.records import AliasEvent, ModelVersion
from hanzo.ml.registry.signing import parse_manifest, verify_artifact, verify_signature
from hanzo.ml.registry.storage import ArtifactStorage, FileSystemStorage
from hanzo.ml.registry.versions import LATEST, SemVer, check_name, sort_versions

logger = logging.getLogger(__name__)

ARTIFACT_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


class RegistryReader:
    """Read-only view of a registry: what scorers that follow an alias need (``Registry`` adds the writes).

    Parameters
    ----------
    root
        A folder (a :class:`~registry.storage.FileSystemStorage` is made on it) or any storage.
    hmac_key
        When set, ``load`` and ``verify`` refuse unsigned or wrongly signed versions.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     RegistryReader(Path(tmp)).list_models()
    []
    """

    def __init__(self, root: Path | ArtifactStorage | None = None, hmac_key: bytes | None = None) -> None:
        if hmac_key is not None and (not isinstance(hmac_key, bytes) or not hmac_key):
            msg = (
                "registry hmac_key must be non-empty bytes (or None to skip signing); "
                "check HANZO_REGISTRY_HMAC_KEY"
            )
            raise ConfigError(msg)
        if root is None:  # the registry the worker writes: HANZO_REGISTRY_DIR, else <state_dir>/registry
            root = Settings().registry_path
        self.root = root
        self.hmac_key = hmac_key
        self.storage: ArtifactStorage = (
            root if isinstance(root, ArtifactStorage) else FileSystemStorage(Path(root))
        )

    def __repr__(self) -> str:
        key = "***" if self.hmac_key else None
        return f"{type(self).__name__}(root={self.root!r}, hmac_key={key})"

    # ----------------------------------------------------------------------------------------- paths
    @staticmethod
    def _model_dir(name: str) -> str:
        return f"models/{name}"

    def _version_dir(self, name: str, version: str) -> str:
        return f"{self._model_dir(name)}/versions/{version}"

    # ----------------------------------------------------------------------------------------- reads
    def _version_names(self, name: str) -> list[str]:
        prefix = f"{self._model_dir(name)}/versions/"
        found = []
        for path in self.storage.list(prefix.rstrip("/")):
            rest = path[len(prefix) :].split("/")
            if len(rest) == 2 and rest[1] == MANIFEST_FILE:
                try:
                    SemVer.parse(rest[0])
                except RegistryError:
                    logger.warning("registry: ignoring folder %s%s (not a version)", prefix, rest[0])
                    continue
                found.append(rest[0])
        return sort_versions(found)

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        names = set()
        for path in self.storage.list("models"):
            parts = path.split("/")
            if len(parts) == 5 and parts[2] == "versions" and parts[4] == MANIFEST_FILE:
                names.add(parts[1])
        return sorted(names)

    def aliases(self, name: str) -> dict[str, str]:
        """Return the current aliases of model ``name`` (alias -> version)."""
        path = f"{self._model_dir(check_name(name))}/aliases.json"
        if not self.storage.exists(path):
            return {}
        try:
            aliases = json.loads(self.storage.get_bytes(path))
        except json.JSONDecodeError as exc:
            msg = f"alias file {path} is not valid JSON ({exc}); rebuild it from history.jsonl"
            raise RegistryError(msg) from exc
        return {str(k): str(v) for k, v in aliases.items()}

    def history(self, name: str) -> list[AliasEvent]:
        """Return the alias log of model ``name``, oldest first."""
        path = f"{self._model_dir(check_name(name))}/history.jsonl"
        return parse_history(self.storage.get_bytes(path), path) if self.storage.exists(path) else []

    def _unknown(self, name: str, ref: str, versions: list[str]) -> RegistryError:
        if not versions:
            models = self.list_models()
            return RegistryError(f"unknown model {name!r}; registered models: {', '.join(models) or 'none'}")
        shown = versions if len(versions) <= 20 else ["...", *versions[-20:]]
        aliases = self.aliases(name)
        msg = (
            f"model {name!r} has no version or alias {ref!r}; versions: {', '.join(shown)}; "
            f"aliases: {', '.join(f'{a}={v}' for a, v in aliases.items()) or 'none'}; or use 'latest'"
        )
        return RegistryError(msg)

    def resolve(self, name: str, version: str = LATEST) -> str:
        """Return the exact version that ``version`` (``latest``, an alias or a version) names."""
        versions = self._version_names(check_name(name))
        if not versions:
            raise self._unknown(name, version, versions)
        if version == LATEST:
            return versions[-1]
        if version in versions:
            return version
        target = self.aliases(name).get(version)
        if target is not None and target in versions:
            return target
        raise self._unknown(name, version, versions)

    def _manifest(self, name: str, version: str) -> tuple[dict[str, Any], str]:
        where = f"{self._version_dir(name, version)}/{MANIFEST_FILE}"
        manifest = parse_manifest(self.storage.get_bytes(where), where)
        if manifest["name"] != name or manifest["version"] != version:
            msg = (
                f"manifest {where} describes {manifest['name']}@{manifest['version']}, not {name}@{version}: "
                "it was copied or altered; it will not be loaded"
            )
            raise RegistryError(msg)
        return manifest, where

    @staticmethod
    def _record(manifest: Mapping[str, Any], aliases: Mapping[str, str]) -> ModelVersion:
        version = manifest["version"]
        return ModelVersion(
            name=manifest["name"],
            version=version,
            created_at=datetime.fromisoformat(manifest["created_at"]),
            sha256=manifest["artifact"]["sha256"],
            size=manifest["artifact"]["size"],
            metadata=manifest["metadata"],
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            signed="signature" in manifest,
        )

    def show(self, name: str, version: str = LATEST) -> ModelVersion:
        """Describe one version from its manifest (the artifact is neither read nor unpickled)."""
        exact = self.resolve(name, version)
        manifest, _ = self._manifest(name, exact)
        return self._record(manifest, self.aliases(name))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of model ``name`` in order, oldest first (from manifests only)."""
        versions = self._version_names(check_name(name))
        if not versions:
            raise self._unknown(name, LATEST, versions)
        aliases = self.aliases(name)
        return [self._record(self._manifest(name, v)[0], aliases) for v in versions]

    def _verified(self, name: str, version: str) -> tuple[ModelVersion, bytes]:
        exact = self.resolve(name, version)
        manifest, where = self._manifest(name, exact)
        if self.hmac_key is not None:
            verify_signature(manifest, self.hmac_key, where)
        artifact_path = f"{self._version_dir(name, exact)}/{ARTIFACT_FILE}"
        if not self.storage.exists(artifact_path):
            msg = f"artifact {artifact_path} is missing although its manifest exists; delete the version"
            raise RegistryError(msg)
        data = self.storage.get_bytes(artifact_path)
        verify_artifact(manifest, data, artifact_path)
        return self._record(manifest, self.aliases(name)), data

    def verify(self, name: str, version: str = LATEST) -> ModelVersion:
        """Check a version's checksum (and signature, with a key) without unpickling; raise IntegrityError."""
        return self._verified(name, version)[0]

    def load_version(self, name: str, version: str = LATEST) -> tuple[Any, ModelVersion]:
        """Load a model and its description; the artifact is verified before it is unpickled."""
        started = time.perf_counter()
        record, data = self._verified(name, version)
        model = pickle.loads(data)  # noqa: S301 - sha256 (and HMAC with a key) verified just above
        logger.debug(
            "registry: loaded %s@%s (%d bytes) in %.1f ms",
            name,
            record.version,
            record.size,
            (time.perf_counter() - started) * 1e3,
        )
        return model, record

    def load(self, name: str, version: str = LATEST) -> Any:
        """Load a model (``latest``, an alias such as ``production``, or an exact version), verified first."""
        return self.load_version(name, version)[0]

    def diff(self, name: str, v1: str, v2: str) -> dict[str, Any]:
        """Metadata differences from ``v1`` to ``v2`` (nested keys dotted, e.g. ``metrics.auc``).

        Returns ``{"from", "to", "changed": {key: [old, new]}, "added": {key: new}, "removed": {key: old}}``.
        """
        old, new = self.show(name, v1), self.show(name, v2)
        a = _flatten({**old.metadata, "artifact": {"sha256": old.sha256, "size": old.size}})
        b = _flatten({**new.metadata, "artifact": {"sha256": new.sha256, "size": new.size}})
        return {
            "from": old.version,
            "to": new.version,
            "changed": {k: [a[k], b[k]] for k in sorted(a.keys() & b.keys()) if a[k] != b[k]},
            "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
            "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        }
