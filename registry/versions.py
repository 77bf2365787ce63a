"""Model names, semantic versions, snapshot versions and their true order.

Snapshot scheme
---------------
A snapshot of a model built from pipeline spec version ``1.2.3`` is ``1.2.3+snap.000042``: the spec's
version with SemVer *build metadata* ``snap.<sequence>``. Build metadata is the right slot: a snapshot is
the same spec (so SemVer tools give it the precedence of ``1.2.3``, and a prerelease suffix such as
``-snap.1`` would wrongly sort before the release ``1.2.3``), while the zero-padded sequence keeps plain
string sorting (``ls``, object-store listings) right up to 999,999 snapshots. The registry orders versions
by SemVer precedence, then: no build metadata first, other build metadata by text, then snapshots by their
sequence number compared as integers (so ordering stays right past 999,999 too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hanzo.ml.config.errors import RegistryError

NAME_RULE = "1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
ALIAS_RULE = "1-64 characters of a-z, 0-9, '_' or '-', starting with a letter; 'latest' is reserved"
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
VERSION_RULE = (
    "semantic version MAJOR.MINOR.PATCH with optional -prerelease and +build, e.g. 1.2.3+snap.000001"
)
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SNAP_RE = re.compile(r"^snap\.(\d+)$")
#: Digits of the zero-padded snapshot sequence.
SNAP_WIDTH = 6
LATEST = "latest"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise RegistryError naming the rule.

    Examples
    --------
    >>> check_name("churn_prediction")
    'churn_prediction'
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        msg = f"model name {name!r} is invalid: use {NAME_RULE}"
        raise RegistryError(msg)
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name, else raise RegistryError naming the rule."""
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias) or alias == LATEST:
        msg = f"alias {alias!r} is invalid: use {ALIAS_RULE}"
        raise RegistryError(msg)
    return alias


@dataclass(frozen=True)
class SemVer:
    """A parsed semantic version with the registry's total order (see the module docstring).

    Examples
    --------
    >>> versions = ["1.2.3+snap.000010", "1.2.3", "1.2.3-rc.1", "1.2.3+snap.000002", "1.10.0"]
    >>> sorted(versions, key=lambda v: SemVer.parse(v).sort_key)
    ['1.2.3-rc.1', '1.2.3', '1.2.3+snap.000002', '1.2.3+snap.000010', '1.10.0']
    """

    major: int
    minor: int
    patch: int
    prerelease: str | None = None
    build: str | None = None

    @classmethod
    def parse(cls, version: str) -> SemVer:
        """Parse ``version`` or raise RegistryError naming the value and the rule."""
        match = VERSION_RE.fullmatch(version) if isinstance(version, str) and len(version) <= 128 else None
        if match is None:
            msg = f"version {version!r} is invalid: use a {VERSION_RULE}"
            raise RegistryError(msg)
        major, minor, patch, pre, build = match.groups()
        return cls(int(major), int(minor), int(patch), pre, build)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.build:
            text += f"+{self.build}"
        return text

    @property
    def base(self) -> str:
        """The version without build metadata (``1.2.3-rc.1+snap.000004`` -> ``1.2.3-rc.1``)."""
        return str(SemVer(self.major, self.minor, self.patch, self.prerelease))

    @property
    def snapshot(self) -> int | None:
        """The snapshot sequence number, or None when this is not a snapshot version."""
        match = SNAP_RE.fullmatch(self.build or "")
        return int(match.group(1)) if match else None

    @property
    def sort_key(self) -> tuple[object, ...]:
        """Key of the registry's order: SemVer precedence, then plain < other build < snapshot sequence."""
        if self.prerelease is None:
            pre: tuple[object, ...] = (1,)
        else:
            pre = (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease.split(".")))
        snap = self.snapshot
        if self.build is None:
            build: tuple[object, ...] = (0, 0, "")
        elif snap is None:
            build = (1, 0, self.build)
        else:
            build = (2, snap, "")
        return (self.major, self.minor, self.patch, pre, build)


def sort_versions(versions: list[str]) -> list[str]:
    """Return ``versions`` in the registry's order, oldest first."""
    return sorted(versions, key=lambda v: SemVer.parse(v).sort_key)


def snapshot_version(base_version: str, sequence: int) -> str:
    """Return ``base_version`` with snapshot ``sequence`` as build metadata.

    Examples
    --------
    >>> snapshot_version("1.2.3", 7)
    '1.2.3+snap.000007'
    """
    base = SemVer.parse(base_version)
    if base.build is not None:
        msg = (
            f"base version {base_version!r} already has build metadata {base.build!r}; "
            f"pass the spec version without '+...' (e.g. {base.base!r})"
        )
        raise RegistryError(msg)
    return f"{base_version}+snap.{sequence:0{SNAP_WIDTH}d}"
