"""Several rest-json services behind one endpoint, told apart by the first segment of the path.

Lambda's paths start with a date (``/2015-03-31/functions``); EventBridge Scheduler's with
``/schedules`` or ``/schedule-groups``.  Each prefix names the ``RestRouter`` of its model; the
rest go to the default (Lambda's).
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.model import OperationModel

from lamina.protocol.router import RestRouter


class PrefixRouter:
    def __init__(self, default: RestRouter, by_segment: Mapping[str, RestRouter]) -> None:
        self._default = default
        self._by_segment = dict(by_segment)

    def match(self, method: str, path: str, query: str = "") -> tuple[OperationModel, dict[str, str]] | None:
        segment = path[1:].split("/", 1)[0]
        return self._by_segment.get(segment, self._default).match(method, path, query)
