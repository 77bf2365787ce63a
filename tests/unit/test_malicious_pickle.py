"""A malicious pickle dropped into the registry folder WITHOUT a usable manifest is never unpickled.

tests/unit/test_registry_integrity.py covers the same payload under a valid-looking manifest (unsigned or
wrongly signed in a keyed registry, or swapped in under a real manifest). This file covers the remaining
drop: an artifact with no manifest at all, or with an empty or partial one, in keyed and unkeyed registries.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from hanzo.ml.config.errors import IntegrityError, RegistryError
from hanzo.ml.registry import Registry

KEY = b"k" * 32


class _Canary:
    """Unpickling this calls open(path, "w"): the canary file appears if the pickle is ever executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_control_the_payload_creates_its_canary(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(_Canary(canary))).close()  # noqa: S301 - the point of the control
    assert canary.exists()


@pytest.mark.parametrize("hmac_key", [None, KEY], ids=["unkeyed", "keyed"])
@pytest.mark.parametrize("artifact", ["model.pkl", "artifact.bin"])
def test_artifact_without_manifest_is_invisible_and_never_loaded(
    tmp_path: Path, hmac_key: bytes | None, artifact: str
) -> None:
    root, canary = tmp_path / "reg", tmp_path / "canary"
    reg = Registry(root, hmac_key=hmac_key)
    reg.register({"w": 1.0}, "m", version="1.0.0")
    folder = root / "models" / "m" / "versions" / "9.0.0"
    folder.mkdir(parents=True)
    (folder / artifact).write_bytes(pickle.dumps(_Canary(canary), protocol=5))

    with pytest.raises(RegistryError, match=r"model 'm' has no version or alias '9\.0\.0'"):
        reg.load("m", "9.0.0")
    assert reg.load("m") == {"w": 1.0}  # latest ignores the folder without a manifest
    assert [mv.version for mv in reg.list_versions("m")] == ["1.0.0"]
    # a model that is nothing but a dropped pickle does not exist
    (root / "models" / "x" / "versions" / "1.0.0").mkdir(parents=True)
    (root / "models" / "x" / "versions" / "1.0.0" / "model.pkl").write_bytes(pickle.dumps(_Canary(canary)))
    with pytest.raises(RegistryError):
        reg.load("x")
    assert not canary.exists()


@pytest.mark.parametrize("hmac_key", [None, KEY], ids=["unkeyed", "keyed"])
@pytest.mark.parametrize(
    "manifest",
    [
        b"",
        b"{}",
        b"[1, 2]",
        json.dumps({"format": 1, "name": "m", "version": "9.0.0"}).encode(),
        json.dumps(
            {"format": 1, "name": "m", "version": "9.0.0", "artifact": {"file": "model.pkl"}}
        ).encode(),
    ],
    ids=["empty", "empty-object", "list", "no-artifact", "artifact-without-sha256"],
)
def test_artifact_with_an_unusable_manifest_is_refused(
    tmp_path: Path, hmac_key: bytes | None, manifest: bytes
) -> None:
    root, canary = tmp_path / "reg", tmp_path / "canary"
    reg = Registry(root, hmac_key=hmac_key)
    reg.register({"w": 1.0}, "m", version="1.0.0")
    folder = root / "models" / "m" / "versions" / "9.0.0"
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(_Canary(canary), protocol=5))
    (folder / "manifest.json").write_bytes(manifest)

    with pytest.raises(IntegrityError, match=r"manifest models/m/versions/9\.0\.0/manifest\.json"):
        reg.load("m", "9.0.0")
    with pytest.raises(IntegrityError):
        reg.promote("m", "9.0.0")
    assert not canary.exists()
