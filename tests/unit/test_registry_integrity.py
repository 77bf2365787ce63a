"""Integrity: tampered, unsigned, wrongly signed and malicious artifacts are refused before unpickling."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest

from hanzo.ml.config.errors import IntegrityError, RegistryError
from hanzo.ml.registry import Registry
from hanzo.ml.registry.signing import canonical_json, sign

KEY = b"k" * 32


class _Canary:
    """Unpickling this calls open(path, "w"): the canary file appears if the pickle is ever executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _evil_bytes(canary: Path) -> bytes:
    return pickle.dumps(_Canary(canary), protocol=5)


def test_the_malicious_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload used below really does create its canary when unpickled."""
    canary = tmp_path / "control-canary"
    pickle.loads(_evil_bytes(canary)).close()  # noqa: S301 - the point of the control
    assert canary.exists()


def _drop_version(root: Path, name: str, version: str, data: bytes, signature: dict | None) -> None:
    folder = root / "models" / name / "versions" / version
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(data)
    manifest = {
        "format": 1,
        "name": name,
        "version": version,
        "created_at": "2024-01-01T00:00:00+00:00",
        "artifact": {
            "file": "model.pkl",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pickle_protocol": 5,
        },
        "metadata": {},
    }
    if signature is not None:
        manifest["signature"] = signature
    (folder / "manifest.json").write_bytes(canonical_json(manifest))


def test_tampered_artifact_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    root, canary = tmp_path / "reg", tmp_path / "canary"
    reg = Registry(root)
    reg.register({"w": 1.0}, "m", version="1.0.0")
    (root / "models/m/versions/1.0.0/model.pkl").write_bytes(_evil_bytes(canary))
    with pytest.raises(
        IntegrityError, match=r"artifact models/m/versions/1.0.0/model.pkl has .*not be loaded"
    ):
        reg.load("m", "1.0.0")
    with pytest.raises(IntegrityError):
        reg.verify("m")
    with pytest.raises(IntegrityError):
        reg.promote("m", "1.0.0")  # an alias is never pointed at a tampered version
    assert reg.aliases("m") == {}
    assert not canary.exists()


def test_same_size_corruption_is_caught_by_sha256(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register({"w": 1.0}, "m", version="1.0.0")
    path = tmp_path / "models/m/versions/1.0.0/model.pkl"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="has sha256 .* its manifest says"):
        reg.load("m")


def test_malicious_version_dropped_into_a_signed_registry_is_never_executed(tmp_path: Path) -> None:
    root, canary = tmp_path / "reg", tmp_path / "canary"
    reg = Registry(root, hmac_key=KEY)
    reg.register({"w": 1.0}, "m", version="1.0.0")
    evil = _evil_bytes(canary)
    _drop_version(root, "m", "9.0.0", evil, signature=None)  # unsigned, correct sha256
    _drop_version(root, "m", "9.1.0", evil, signature={"algorithm": "hmac-sha256", "value": "0" * 64})
    with pytest.raises(
        IntegrityError, match=r"manifest models/m/versions/9.1.0/manifest.json has a wrong HMAC"
    ):
        reg.load("m")  # latest is the dropped 9.1.0
    with pytest.raises(IntegrityError, match=r"manifest models/m/versions/9.0.0/manifest.json is unsigned"):
        reg.load("m", "9.0.0")
    # Describing versions reads manifests only.
    assert [mv.version for mv in reg.list_versions("m")] == ["1.0.0", "9.0.0", "9.1.0"]
    assert reg.show("m", "9.0.0").signed is False
    assert reg.load("m", "1.0.0") == {"w": 1.0}
    assert not canary.exists()


def test_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    root, canary = tmp_path / "reg", tmp_path / "canary"
    Registry(root, hmac_key=b"someone else's key").register(_Canary(canary), "m", version="1.0.0")
    with pytest.raises(IntegrityError, match="wrong HMAC signature"):
        Registry(root, hmac_key=KEY).load("m")
    assert not canary.exists()


def test_unsigned_registration_is_refused_by_a_keyed_registry(tmp_path: Path) -> None:
    Registry(tmp_path).register({"w": 1}, "m", version="1.0.0")
    with pytest.raises(IntegrityError, match="unsigned but this registry requires HMAC signatures"):
        Registry(tmp_path, hmac_key=KEY).load("m")


def test_editing_signed_metadata_breaks_the_signature(tmp_path: Path) -> None:
    reg = Registry(tmp_path, hmac_key=KEY)
    reg.register({"w": 1}, "m", version="1.0.0", metadata={"metrics": {"auc": 0.7}})
    path = tmp_path / "models/m/versions/1.0.0/manifest.json"
    manifest = json.loads(path.read_bytes())
    manifest["metadata"]["metrics"]["auc"] = 0.99
    path.write_bytes(canonical_json(manifest))
    with pytest.raises(IntegrityError, match="wrong HMAC signature"):
        reg.load("m")


def test_a_signed_manifest_copied_to_another_version_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path, hmac_key=KEY)
    reg.register({"old": True}, "m", version="1.0.0")
    src = tmp_path / "models/m/versions/1.0.0"
    dst = tmp_path / "models/m/versions/2.0.0"
    dst.mkdir()
    for f in ("model.pkl", "manifest.json"):
        (dst / f).write_bytes((src / f).read_bytes())
    with pytest.raises(RegistryError, match="describes m@1.0.0, not m@2.0.0"):
        reg.load("m", "2.0.0")


def test_valid_signature_loads(tmp_path: Path) -> None:
    reg = Registry(tmp_path, hmac_key=KEY)
    mv = reg.register({"w": 2}, "m", version="1.0.0")
    assert mv.signed
    manifest = json.loads((tmp_path / "models/m/versions/1.0.0/manifest.json").read_bytes())
    body = {k: v for k, v in manifest.items() if k != "signature"}
    assert manifest["signature"]["value"] == sign(body, KEY)
    assert Registry(tmp_path, hmac_key=KEY).load("m") == {"w": 2}


def test_corrupt_manifest_and_missing_artifact(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(1, "m", version="1.0.0")
    reg.register(2, "m", version="2.0.0")
    (tmp_path / "models/m/versions/2.0.0/manifest.json").write_bytes(b"{not json")
    with pytest.raises(
        IntegrityError, match=r"manifest models/m/versions/2.0.0/manifest.json is not valid JSON"
    ):
        reg.load("m")
    (tmp_path / "models/m/versions/1.0.0/model.pkl").unlink()
    with pytest.raises(RegistryError, match="artifact models/m/versions/1.0.0/model.pkl is missing"):
        reg.load("m", "1.0.0")
