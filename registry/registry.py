"""The versioned model registry: register, snapshot versions, aliases with a log, retention, the gate.

Reads (resolve, show, list, verified load, diff) live in :mod:`registry.reader`; the storage layout is
described there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import pickle
import platform
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hanzo.ml.config.errors import ConfigError, RegistryError
from hanzo.ml.registry.gate import GateDecision, evaluate_gate
from hanzo.ml.registry.history import ever_aliased, rollback_target
from hanzo.ml.registry.reader import ARTIFACT_FILE, MANIFEST_FILE, RegistryReader
from hanzo.ml.registry.records import AliasAction, AliasEvent, ModelVersion
from hanzo.ml.registry.signing import MANIFEST_FORMAT, SIGNATURE_ALGORITHM, canonical_json, sha256_hex, sign
from hanzo.ml.registry.storage import ArtifactStorage
from hanzo.ml.registry.versions import SemVer, check_alias, check_name, snapshot_version, sort_versions

logger = logging.getLogger(__name__)

PICKLE_PROTOCOL = 5


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of python, river and numpy (those installed), recorded in every manifest."""
    found = {"python": platform.python_version()}
    for package in ("river", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


class Registry(RegistryReader):
    """Versioned models in an :class:`~registry.storage.ArtifactStorage`, verified before they are unpickled.

    Parameters
    ----------
    root
        A folder (a :class:`~registry.storage.FileSystemStorage` is made on it) or any storage; default
        the worker's registry (``HANZO_REGISTRY_DIR``, else ``<HANZO_STATE_DIR>/registry``).
    hmac_key
        When set, every registered manifest is signed (HMAC-SHA256) and ``load`` refuses unsigned or
        wrongly signed versions. Without it only the SHA-256 checks corruption (see ``registry.signing``).
    keep_last
        After each register keep this many newest versions plus every version that ever held an alias;
        delete the rest. ``None`` keeps everything.

    Examples
    --------
    >>> import tempfile
    >>> from river import linear_model
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     reg = Registry(Path(tmp), hmac_key=b"secret")
    ...     v1 = reg.register(linear_model.LogisticRegression(), "churn", version="1.2.3")
    ...     snap = reg.register(linear_model.LogisticRegression(), "churn")
    ...     _ = reg.promote("churn", snap.version, reason="first snapshot")
    ...     [mv.version for mv in reg.list_versions("churn")], reg.aliases("churn")
    (['1.2.3', '1.2.3+snap.000001'], {'production': '1.2.3+snap.000001'})
    """

    def __init__(
        self,
        root: Path | ArtifactStorage | None = None,
        hmac_key: bytes | None = None,
        keep_last: int | None = 20,
    ) -> None:
        super().__init__(root, hmac_key)
        if keep_last is not None and keep_last < 1:
            msg = f"registry keep_last={keep_last} is invalid: use an integer >= 1, or None to keep all"
            raise ConfigError(msg)
        self.keep_last = keep_last

    def __repr__(self) -> str:
        key = "***" if self.hmac_key else None
        return f"Registry(root={self.root!r}, hmac_key={key}, keep_last={self.keep_last})"

    # ---------------------------------------------------------------------------------------- writes
    def _allocate_snapshot(self, name: str, base_version: str, versions: list[str]) -> str:
        """Hand out the next snapshot number (caller holds the lock); numbers never repeat."""
        snapshot_version(base_version, 0)  # validates the base before anything is written
        path = f"{self._model_dir(name)}/snapshot_seq"
        counter = int(self.storage.get_bytes(path)) if self.storage.exists(path) else 0
        existing = max((SemVer.parse(v).snapshot or 0 for v in versions), default=0)
        sequence = max(counter, existing) + 1
        self.storage.put_bytes(path, str(sequence).encode())
        return snapshot_version(base_version, sequence)

    def next_snapshot_version(self, name: str, base_version: str) -> str:
        """Reserve and return the next snapshot version of ``name`` built on ``base_version``.

        ``1.2.3`` -> ``1.2.3+snap.000001``, ``1.2.3+snap.000002``, ...; the sequence is per model,
        monotonic across processes (taken under the lock) and never reused, even after deletions.
        """
        with self.storage.lock(check_name(name)):
            return self._allocate_snapshot(name, base_version, self._version_names(name))

    def register(
        self, model: Any, name: str, version: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        """Store ``model`` as a new, immutable version of ``name`` and return its description.

        ``version=None`` takes the next snapshot of the latest version's base (``0.0.0`` for a new model),
        allocated under the lock so concurrent writers never collide. The registry adds ``libraries`` and
        ``parent_version`` (the latest version before this one) to the metadata unless given.
        """
        check_name(name)
        if version is not None:
            SemVer.parse(version)
        meta = dict(metadata or {})
        canonical_json(meta, what=f"metadata of model {name!r}")
        started = time.perf_counter()
        try:
            data = pickle.dumps(model, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            msg = (
                f"model {name!r} of type {type(model).__name__} cannot be pickled ({exc}); River estimators "
                "pickle, but lambdas, open files and network clients held by the model do not"
            )
            raise RegistryError(msg) from exc
        digest = sha256_hex(data)
        with self.storage.lock(name):
            versions = self._version_names(name)
            if version is None:
                base = SemVer.parse(versions[-1]).base if versions else "0.0.0"
                version = self._allocate_snapshot(name, base, versions)
            elif version in versions:
                msg = (
                    f"model {name!r} version {version!r} already exists and versions are immutable; "
                    f"register without a version to get the next snapshot, or delete {version!r} first"
                )
                raise RegistryError(msg)
            meta.setdefault("parent_version", versions[-1] if versions else None)
            meta.setdefault("libraries", library_versions())
            manifest: dict[str, Any] = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "version": version,
                "created_at": datetime.now(UTC).isoformat(),
                "artifact": {
                    "file": ARTIFACT_FILE,
                    "sha256": digest,
                    "size": len(data),
                    "pickle_protocol": PICKLE_PROTOCOL,
                },
                "metadata": meta,
            }
            if self.hmac_key is not None:
                manifest["signature"] = {
                    "algorithm": SIGNATURE_ALGORITHM,
                    "value": sign(manifest, self.hmac_key),
                }
            folder = self._version_dir(name, version)
            self.storage.put_bytes(f"{folder}/{ARTIFACT_FILE}", data)
            self.storage.put_bytes(f"{folder}/{MANIFEST_FILE}", canonical_json(manifest))  # commit point
            self._apply_retention(name, sort_versions([*versions, version]))
            aliases = self.aliases(name)
        logger.info(
            "registry: registered %s@%s (%d bytes, %s) in %.1f ms",
            name,
            version,
            len(data),
            "signed" if self.hmac_key else "unsigned",
            (time.perf_counter() - started) * 1e3,
        )
        return self._record(manifest, aliases)

    def _apply_retention(self, name: str, versions: list[str]) -> None:
        if self.keep_last is None or len(versions) <= self.keep_last:
            return
        keep = set(versions[-self.keep_last :]) | ever_aliased(self.history(name), self.aliases(name))
        for version in versions:
            if version not in keep:
                self._delete_files(name, version)
                logger.info("registry: retention deleted %s@%s (keep_last=%d)", name, version, self.keep_last)

    def _delete_files(self, name: str, version: str) -> None:
        folder = self._version_dir(name, version)
        self.storage.delete(f"{folder}/{MANIFEST_FILE}")  # the version disappears here
        self.storage.delete(f"{folder}/{ARTIFACT_FILE}")

    def delete(self, name: str, version: str, force: bool = False) -> None:
        """Delete one version; a version holding an alias is refused unless ``force`` (drops the alias)."""
        with self.storage.lock(check_name(name)):
            exact = self.resolve(name, version)
            aliases = self.aliases(name)
            held = sorted(a for a, v in aliases.items() if v == exact)
            if held and not force:
                msg = (
                    f"model {name!r} version {exact!r} holds alias(es) {', '.join(held)}; "
                    "promote another version first, or pass force=True to delete it and drop the alias"
                )
                raise RegistryError(msg)
            for alias in held:
                self._append_event(name, alias, exact, None, "removed", f"version {exact} deleted (force)")
                del aliases[alias]
            if held:
                self._write_aliases(name, aliases)
            self._delete_files(name, exact)
        logger.info("registry: deleted %s@%s", name, exact)

    def _write_aliases(self, name: str, aliases: Mapping[str, str]) -> None:
        self.storage.put_bytes(f"{self._model_dir(name)}/aliases.json", canonical_json(dict(aliases)))

    def _append_event(
        self,
        name: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        action: AliasAction,
        reason: str,
    ) -> AliasEvent:
        event = AliasEvent(
            time=datetime.now(UTC),
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            action=action,
            reason=reason,
        )
        path = f"{self._model_dir(name)}/history.jsonl"
        line = event.model_dump_json().encode() + b"\n"
        if self.storage.exists(path) and not self.storage.get_bytes(path).endswith(b"\n"):
            line = b"\n" + line  # an append cut short by a crash: start on a fresh line
        self.storage.append_bytes(path, line)
        return event

    def _move_alias(
        self, name: str, alias: str, version: str, action: AliasAction, reason: str
    ) -> ModelVersion:
        check_alias(alias)
        with self.storage.lock(check_name(name)):
            record = self.verify(name, version)  # never point an alias at a tampered version
            aliases = self.aliases(name)
            current = aliases.get(alias)
            if current == record.version:
                logger.info("registry: %s alias %s already at %s", name, alias, current)
                return record
            self._append_event(name, alias, current, record.version, action, reason)
            aliases[alias] = record.version
            self._write_aliases(name, aliases)
        logger.info("registry: %s %s: %s %s -> %s (%s)", name, action, alias, current, record.version, reason)
        return record.model_copy(update={"aliases": tuple(sorted({*record.aliases, alias}))})

    def set_alias(self, name: str, alias: str, version: str, reason: str = "") -> ModelVersion:
        """Point ``alias`` at ``version`` (checked first) and log it as ``set``."""
        return self._move_alias(name, alias, version, "set", reason)

    def promote(self, name: str, version: str, alias: str = "production", reason: str = "") -> ModelVersion:
        """Point ``alias`` (``production`` by default) at ``version`` and log it as ``promote``."""
        return self._move_alias(name, alias, version, "promote", reason)

    def rollback(self, name: str, alias: str = "production", reason: str = "") -> ModelVersion:
        """Move ``alias`` back to the version that held it before the current one; log it as ``rollback``.

        Repeated rollbacks walk further back (promote pushes, rollback pops).
        """
        check_alias(alias)
        with self.storage.lock(check_name(name)):
            aliases = self.aliases(name)
            current = aliases.get(alias)
            if current is None:
                have = sorted(aliases) or "none"
                msg = f"model {name!r} has no alias {alias!r} to roll back (aliases: {have})"
                raise RegistryError(msg)
            target = rollback_target(self.history(name), alias, current, set(self._version_names(name)))
            if target is None:
                msg = (
                    f"model {name!r} alias {alias!r} has no earlier version to roll back to (only {current})"
                )
                raise RegistryError(msg)
            record = self.verify(name, target)
            self._append_event(name, alias, current, target, "rollback", reason)
            aliases[alias] = target
            self._write_aliases(name, aliases)
        logger.warning("registry: %s rollback: %s %s -> %s (%s)", name, alias, current, target, reason)
        return record.model_copy(update={"aliases": tuple(sorted({*record.aliases, alias}))})

    def promote_if_gate(
        self,
        name: str,
        version: str,
        thresholds: Mapping[str, float],
        drift_active: bool,
        reason: str = "",
        alias: str = "production",
    ) -> GateDecision:
        """Promote ``version`` only if its ``metadata["metrics"]`` pass the gate and no drift is active.

        A refused candidate keeps its place as a candidate; the alias log records a ``gate_rejected``
        event whose reason lists what failed.
        """
        record = self.show(name, version)
        metrics = record.metadata.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            msg = (
                f"model {name!r} version {record.version!r} metadata 'metrics' is not a mapping: {metrics!r}"
            )
            raise RegistryError(msg)
        if isinstance(metrics.get("cumulative"), Mapping):
            # a learner snapshot keeps {"cumulative": {...}, "rolling": {...}}; the gate judges the cumulative
            metrics = metrics["cumulative"]
        decision = evaluate_gate(metrics, thresholds, drift_active)
        note = f"{reason}; " if reason else ""
        if decision.passed:
            self.promote(name, record.version, alias, f"{note}gate passed: {', '.join(decision.checks)}")
        else:
            with self.storage.lock(name):
                current = self.aliases(name).get(alias)
                self._append_event(
                    name,
                    alias,
                    current,
                    record.version,
                    "gate_rejected",
                    f"{note}gate failed: {'; '.join(decision.reasons)}",
                )
            logger.warning(
                "registry: %s@%s not promoted to %s: %s",
                name,
                record.version,
                alias,
                "; ".join(decision.reasons),
            )
        return decision
