"""The records the registry hands out: a model version, and one event of the alias log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: What moved (or did not move) an alias: ``promote``/``set``/``rollback`` move it, ``removed`` drops it
#: (forced delete of its version), ``gate_rejected`` records a promotion the gate refused.
AliasAction = Literal["promote", "set", "rollback", "removed", "gate_rejected"]


class ModelVersion(BaseModel):
    """One registered version of a model, as described by its manifest (never by unpickling it).

    ``metadata`` holds the caller's free-form JSON plus what the registry fills: ``libraries`` (python,
    river, numpy versions) and ``parent_version`` (the latest version when this one was registered,
    unless the caller gave one). Conventional keys compared by :meth:`Registry.diff`: ``metrics``,
    ``examples_learned``, ``features``, ``spec_hash``, ``offsets``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> mv = ModelVersion(name="churn", version="1.2.3", created_at=datetime(2024, 1, 1, tzinfo=UTC),
    ...                   sha256="0" * 64, size=10)
    >>> mv.version, mv.aliases
    ('1.2.3', ())
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    created_at: datetime
    sha256: str
    size: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    signed: bool = False


class AliasEvent(BaseModel):
    """One line of a model's alias log (``history.jsonl``), appended and never rewritten.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> event = AliasEvent(time=datetime(2024, 1, 1, tzinfo=UTC), alias="production",
    ...                    from_version=None, to_version="1.0.0", action="promote", reason="first")
    >>> AliasEvent.model_validate_json(event.model_dump_json()) == event
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: datetime
    alias: str
    from_version: str | None
    to_version: str | None
    action: AliasAction
    reason: str = ""
