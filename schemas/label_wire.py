"""Labels as the learner reads them: msgspec decodes and checks the fields, no pydantic model is built.

:func:`decode_label` returns a :class:`WireLabel` whose fields are exactly those of the
:class:`~schemas.events.Label` that :func:`~schemas.events.parse_event` (``kind="label"``) builds from the
same bytes, or ``None``: the caller then asks pydantic, which accepts or names the dead-letter reason. It
never accepts what pydantic rejects, so it is stricter wherever it cannot prove it treats an input the same
(surrounding whitespace pydantic would strip, numbers pydantic would coerce, non-finite values, unknown
fields). ``tests/unit/test_label_wire.py`` feeds both the same good and bad inputs.

Why: pydantic's ``validate_json`` of a label costs ~2.6 us here, this ~0.7 us; the label join learns
every label, and the whole per-label overhead it may add to River's predict-and-learn is a few
microseconds.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from hanzo.ml.schemas.events import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, Label

__all__ = ["WireLabel", "decode_label", "to_label"]

_Id = Annotated[str, Meta(min_length=1, max_length=128)]
_Time = Annotated[int, Meta(ge=MIN_EVENT_TIME_MS, le=MAX_EVENT_TIME_MS)]
#: finite (pydantic's ``allow_inf_nan=False``): JSON has no NaN, but ``1e400`` decodes to infinity
_Finite = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
#: the three ids joined by newlines (no id may hold one), each ``[A-Za-z0-9_.:\-]+`` as pydantic's ``Id``
#: pattern; one ``fullmatch`` instead of msgspec's ``re.search`` per field
_IDS = re.compile(r"[A-Za-z0-9_.:\-]+\n[A-Za-z0-9_.:\-]+\n[A-Za-z0-9_.:\-]+")


class WireLabel(Struct, tag_field="kind", tag="label", forbid_unknown_fields=True, frozen=True, gc=False):
    """The fields of a :class:`~schemas.events.Label`, read like one (``lab.label_id``, ``lab.value``)."""

    label_id: _Id
    target: _Id
    subject_id: _Id
    value: _Finite
    event_time: _Time
    schema_version: Literal[1] | UnsetType = UNSET


#: one tagged Struct, not a union: ``kind`` may be absent (pydantic's default), if present it must be "label"
_DECODER = msgspec.json.Decoder(WireLabel)


def decode_label(data: bytes | bytearray | str) -> WireLabel | None:
    """The label pydantic would parse from ``data`` with ``kind="label"``, or ``None``: ask pydantic.

    Examples
    --------
    >>> lab = decode_label(b'{"kind":"label","label_id":"l1","target":"fraud","subject_id":"o1",'
    ...                    b'"value":1,"event_time":1700000000000}')
    >>> lab.subject_id, lab.value
    ('o1', 1.0)
    >>> decode_label(b'{"kind":"label","label_id":" l1","target":"fraud","subject_id":"o1",'
    ...              b'"value":1,"event_time":1700000000000}') is None  # pydantic strips: ask it
    True
    """
    try:
        lab = _DECODER.decode(data)
    except msgspec.MsgspecError:
        return None
    if _IDS.fullmatch(f"{lab.label_id}\n{lab.target}\n{lab.subject_id}") is None:
        return None
    return lab


def to_label(lab: WireLabel | Label) -> Label:
    """The pydantic :class:`~schemas.events.Label` of these fields (built without validating them again)."""
    if isinstance(lab, Label):
        return lab
    return Label.model_construct(
        label_id=lab.label_id,
        target=lab.target,
        subject_id=lab.subject_id,
        value=lab.value,
        event_time=lab.event_time,
    )
