"""Manifests: canonical JSON, SHA-256 of artifacts, HMAC-SHA256 signatures and their verification.

What this protects against: the SHA-256 in the manifest catches a corrupted or swapped artifact. With an
HMAC key, the signature over the manifest (which names the model, the version and the artifact's SHA-256)
proves a holder of the key registered exactly this artifact as exactly this version, so a pickle dropped
into the folder with a hand-made manifest is refused before it is unpickled. Without a key, anyone who can
write the folder can also write a matching manifest: use a key wherever the folder is shared.
Aliases and the alias log are not signed: whoever can write the folder can point an alias at another
*signed* version (or delete versions), never make an unsigned or altered artifact load.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from hanzo.ml.config.errors import IntegrityError, RegistryError

MANIFEST_FORMAT = 1
SIGNATURE_ALGORITHM = "hmac-sha256"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Examples
    --------
    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any, *, what: str = "manifest") -> bytes:
    r"""Return deterministic JSON bytes of ``obj`` (sorted keys, no spaces, ASCII, no NaN).

    Raises RegistryError naming ``what`` when ``obj`` is not plain JSON.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    b'{"a":[1.5,"\\u00e9"],"b":1}'
    """
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        msg = f"{what} is not plain JSON ({exc}); use str/int/float/bool/None, lists, str-keyed dicts, no NaN"
        raise RegistryError(msg) from exc


def sign(content: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of the canonical JSON of ``content``."""
    return hmac.new(key, canonical_json(dict(content)), hashlib.sha256).hexdigest()


def unsigned_part(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Return the manifest without its ``signature`` entry: the content the signature covers."""
    return {k: v for k, v in manifest.items() if k != "signature"}


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    """Parse manifest bytes (JSON, never pickle); raise IntegrityError naming ``where`` when malformed."""
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"manifest {where} is not valid JSON ({exc}); the version cannot be trusted: delete it"
        raise IntegrityError(msg) from exc
    required = {"format", "name", "version", "created_at", "artifact", "metadata"}
    if not isinstance(manifest, dict) or not required <= manifest.keys():
        msg = f"manifest {where} lacks fields {sorted(required - set(manifest or {}))}; delete the version"
        raise IntegrityError(msg)
    artifact = manifest["artifact"]
    if not isinstance(artifact, dict) or not {"sha256", "size"} <= artifact.keys():
        msg = f"manifest {where} has no artifact sha256/size; delete the version"
        raise IntegrityError(msg)
    if manifest["format"] != MANIFEST_FORMAT:
        msg = f"manifest {where} has format {manifest['format']!r}; this hanzo-ml reads {MANIFEST_FORMAT}"
        raise IntegrityError(msg)
    return manifest


def verify_signature(manifest: Mapping[str, Any], key: bytes, where: str) -> None:
    """Check the manifest's HMAC signature with ``key``; raise IntegrityError naming ``where``."""
    signature = manifest.get("signature")
    if not isinstance(signature, dict) or "value" not in signature:
        msg = (
            f"manifest {where} is unsigned but this registry requires HMAC signatures; "
            "re-register the model with the registry's key"
        )
        raise IntegrityError(msg)
    if signature.get("algorithm") != SIGNATURE_ALGORITHM:
        algorithm = signature.get("algorithm")
        msg = f"manifest {where} is signed with {algorithm!r}, expected {SIGNATURE_ALGORITHM!r}"
        raise IntegrityError(msg)
    expected = sign(unsigned_part(manifest), key)
    if not hmac.compare_digest(expected, str(signature["value"])):
        msg = (
            f"manifest {where} has a wrong HMAC signature: it was altered or signed with another key; "
            "it will not be loaded"
        )
        raise IntegrityError(msg)


def verify_artifact(manifest: Mapping[str, Any], data: bytes, where: str) -> None:
    """Check the artifact's size and SHA-256 against the manifest; raise IntegrityError naming ``where``."""
    artifact = manifest["artifact"]
    if len(data) != artifact["size"]:
        size = artifact["size"]
        msg = f"artifact {where} has {len(data)} bytes, its manifest says {size}: it will not be loaded"
        raise IntegrityError(msg)
    digest = sha256_hex(data)
    if not hmac.compare_digest(digest, str(artifact["sha256"])):
        msg = (
            f"artifact {where} has sha256 {digest[:16]}..., "
            f"its manifest says {str(artifact['sha256'])[:16]}...: "
            "it was altered or corrupted and will not be loaded"
        )
        raise IntegrityError(msg)
