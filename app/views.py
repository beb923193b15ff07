"""How records look in the JSON the API answers with: the base of the reply models that
are built from records, and the one timestamp form.

Invariant: a reply keeps the form the API has always had. Timestamps are Python's ISO 8601
(``2030-01-01T10:00:00.123456+00:00``, not pydantic's ``…Z``), UUIDs are strings, and a
field is null only where its model says ``| None``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class View(BaseModel):
    """A reply model; it validates from dataclass records and dict rows alike."""

    model_config = ConfigDict(from_attributes=True, frozen=True)
