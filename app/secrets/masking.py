"""Secret values never surface: each is replaced by ``***`` in what is recorded (step
output, error, stdout, stderr), returned (run views, sync replies: they read the records)
and logged (a filter on the log handlers).

A value is masked as it is and as it appears inside a JSON string (escaped). Values shorter
than `MIN_MASKED` characters are refused when a secret is set: masking them would mangle
every text they occur in.

The log filter masks what this process has loaded (`remember`), at most `MAX_REMEMBERED`
values, the latest kept.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_MASKED = 4
MAX_REMEMBERED = 10_000


class Masker:
    """Replaces the given secret values wherever they occur in strings and structures."""

    def __init__(self, values: Iterable[str]) -> None:
        self._pattern = _pattern(frozenset(v for v in values if len(v) >= MIN_MASKED))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(item) for k, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


@functools.lru_cache(maxsize=256)
def _pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    forms = set(values)
    forms.update(json.dumps(value)[1:-1] for value in values)  # as written inside JSON
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


NO_SECRETS = Masker(())

_remembered: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def remember(values: Iterable[str]) -> None:
    """Mask `values` in this process's log lines from now on."""
    with _lock:
        for value in values:
            if len(value) >= MIN_MASKED:
                _remembered[value] = None
                _remembered.move_to_end(value)
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)


def mask_remembered(text: str) -> str:
    """`text` with every remembered secret masked."""
    with _lock:
        if not _remembered:
            return text
        masker = Masker(tuple(_remembered))
    return masker.text(text)


class MaskSecrets(logging.Filter):
    """A handler filter: a record's message with every remembered secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _lock:
            if not _remembered:
                return True
            masker = Masker(tuple(_remembered))
        message = record.getMessage()
        masked = masker.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.text(record.exc_text)
        return True
