"""CloudWatch's metric reads for the AWS/Lambda namespace: GetMetricStatistics, GetMetricData
(MetricStat queries) and ListMetrics, over the per-minute store (``telemetry.cloudwatch_store``).

Handlers take parameters as any of CloudWatch's three wire protocols decode them (CBOR: numbers
and datetimes; JSON: numbers; query: strings) and coerce what they use.  They return plain dicts
whose timestamps are ``datetime`` objects; the protocol layer renders them.  Periods are whole
minutes (the store's resolution); period buckets start at StartTime rounded down to the minute.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from lamina.api.cloudwatch_params import (
    CloudWatchError,
    Params,
    dimensions,
    integer,
    invalid,
    members,
    next_token,
    offset_of,
    period_of,
    required,
    statistic,
    structure,
    timestamp,
)
from lamina.telemetry.cloudwatch_store import MetricStore, SeriesId, combine, minute_of
from lamina.telemetry.harvest import UNITS, Stats

NAMESPACE = "AWS/Lambda"
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
MAX_DATAPOINTS = 1440  # GetMetricStatistics' limit per call
LIST_PAGE = 500  # ListMetrics' page size
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


class CloudWatchApi:
    def __init__(self, store: MetricStore) -> None:
        self._store = store

    async def _periods(
        self, series: SeriesId, start: float, end: float, period: int
    ) -> list[tuple[int, Stats]]:
        """(period start, stats) of every period in [start, end) with data, in time order."""
        origin = minute_of(start)
        minutes = await self._store.minutes(series, origin, math.ceil(end / 60) * 60)
        buckets: dict[int, Stats] = {}
        for minute, stats in minutes.items():
            if not start - 60 < minute < end:
                continue
            slot = origin + (minute - origin) // period * period
            buckets[slot] = combine(buckets[slot], stats) if slot in buckets else stats
        return sorted(buckets.items())

    async def get_metric_statistics(self, region: str, p: Params) -> Params:
        namespace = str(required(p, "Namespace"))
        metric = str(required(p, "MetricName"))
        start = timestamp(required(p, "StartTime"), "StartTime")
        end = timestamp(required(p, "EndTime"), "EndTime")
        period = period_of(required(p, "Period"), "Period")
        statistics = [str(s) for s in members(p.get("Statistics"), "Statistics")]
        if p.get("ExtendedStatistics"):
            raise invalid(
                "lamina keeps no percentiles: ExtendedStatistics are not supported; use Statistics."
            )
        if not statistics:
            raise CloudWatchError(
                "InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics."
            )
        for s in statistics:
            if s not in STATISTICS:
                raise invalid(f"The parameter Statistics must be one of {', '.join(STATISTICS)}, not '{s}'.")
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        wanted = math.ceil((end - minute_of(start)) / period)
        if wanted > MAX_DATAPOINTS:
            raise CloudWatchError(
                "InvalidParameterCombination",
                f"You have requested up to {wanted:,} datapoints, which exceeds the limit of "
                f"{MAX_DATAPOINTS:,}. You may reduce the datapoints requested by increasing Period, "
                "or decreasing the time range.",
            )
        dims = dimensions(p.get("Dimensions"), "Dimensions")
        unit = UNITS.get(metric)
        out: Params = {"Label": metric, "Datapoints": []}
        if namespace != NAMESPACE or unit is None or p.get("Unit") not in (None, unit):
            return out
        for slot, stats in await self._periods((region, metric, dims), start, end, period):
            point: Params = {"Timestamp": datetime.fromtimestamp(slot, UTC)}
            point.update((s, float(statistic(stats, s))) for s in statistics)
            point["Unit"] = unit
            out["Datapoints"].append(point)
        return out

    async def get_metric_data(self, region: str, p: Params) -> Params:
        queries = required(p, "MetricDataQueries")
        start = timestamp(required(p, "StartTime"), "StartTime")
        end = timestamp(required(p, "EndTime"), "EndTime")
        if not isinstance(queries, list) or not 1 <= len(queries) <= 500:
            raise CloudWatchError("ValidationError", "MetricDataQueries must hold 1 to 500 queries.")
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        ascending = p.get("ScanBy") == "TimestampAscending"
        given = p.get("MaxDatapoints")
        limit = 100800 if given in (None, "") else integer(given, "MaxDatapoints")
        if limit < 1:
            raise invalid("The parameter MaxDatapoints must be at least 1.")
        ids = [q.get("Id") for q in queries if isinstance(q, dict)]
        if len(ids) != len(set(map(str, ids))):
            raise CloudWatchError(
                "ValidationError", "The values for parameter id in MetricDataQueries are not unique."
            )
        results = []
        for i, q in enumerate(queries, 1):
            where = f"MetricDataQueries.member.{i}"
            if not isinstance(q, dict):
                raise CloudWatchError("ValidationError", f"{where} must be a metric data query.")
            qid = str(required(q, "Id", f"{where}."))
            if not _QUERY_ID.match(qid):
                raise CloudWatchError(
                    "ValidationError",
                    f"The value {qid} for parameter {where}.Id is not matching the expected pattern "
                    "^[a-z][a-zA-Z0-9_]*$.",
                )
            if q.get("Expression"):
                raise CloudWatchError(
                    "ValidationError",
                    f"lamina does not support metric math: {where}.Expression is not supported; "
                    "use MetricStat.",
                )
            ms = q.get("MetricStat")
            if not isinstance(ms, dict):
                raise CloudWatchError(
                    "ValidationError", f"Exactly one of MetricStat and Expression must be set for {where}."
                )
            metric_def = structure(
                required(ms, "Metric", f"{where}.MetricStat."), f"{where}.MetricStat.Metric"
            )
            stat = str(required(ms, "Stat", f"{where}.MetricStat."))
            if stat not in STATISTICS:
                raise CloudWatchError(
                    "ValidationError",
                    f"The value {stat} for parameter {where}.MetricStat.Stat is not supported by lamina "
                    f"(one of {', '.join(STATISTICS)}).",
                )
            period = period_of(required(ms, "Period", f"{where}.MetricStat."), f"{where}.MetricStat.Period")
            if str(q.get("ReturnData", True)).lower() == "false":
                continue
            metric = str(metric_def.get("MetricName") or "")
            dims = dimensions(metric_def.get("Dimensions"), f"{where}.MetricStat.Metric.Dimensions")
            unit = UNITS.get(metric)
            rows: list[tuple[int, Stats]] = []
            if (
                metric_def.get("Namespace") == NAMESPACE
                and unit is not None
                and ms.get("Unit") in (None, unit)
            ):
                rows = await self._periods((region, metric, dims), start, end, period)
            if not ascending:
                rows.reverse()
            results.append((qid, str(q.get("Label") or metric), rows, stat))
        return self._page(results, offset_of(p.get("NextToken")), limit)

    @staticmethod
    def _page(
        results: list[tuple[str, str, list[tuple[int, Stats]], str]], offset: int, limit: int
    ) -> Params:
        """Datapoints of every query in order, ``limit`` at most from ``offset`` on."""
        out: list[Params] = []
        position = 0
        remaining = limit
        for qid, label, rows, stat in results:
            skip = min(max(offset - position, 0), len(rows))
            position += len(rows)
            page = rows[skip : skip + remaining]
            remaining -= len(page)
            complete = skip + len(page) == len(rows)
            out.append({
                "Id": qid,
                "Label": label,
                "Timestamps": [datetime.fromtimestamp(t, UTC) for t, _ in page],
                "Values": [float(statistic(st, stat)) for _, st in page],
                "StatusCode": "Complete" if complete else "PartialData",
                "Messages": [],
            })  # fmt: skip
        shown = min(position, offset + limit)
        response: Params = {"MetricDataResults": out, "Messages": []}
        if shown < position:
            response["NextToken"] = next_token(shown)
        return response

    def list_metrics(self, region: str, p: Params) -> Params:
        namespace = p.get("Namespace")
        metric_name = p.get("MetricName")
        filters = []
        for i, item in enumerate(members(p.get("Dimensions"), "Dimensions"), 1):
            f = structure(item, f"Dimensions.member.{i}")
            filters.append((str(required(f, "Name", f"Dimensions.member.{i}.")), f.get("Value")))
        recent = p.get("RecentlyActive")
        if recent not in (None, "", "PT3H"):
            raise invalid(f"The parameter RecentlyActive must be PT3H, not '{recent}'.")
        since = minute_of(time.time() - 3 * 3600) if recent else None
        found = []
        for (r, metric, dims), last in self._store.series().items():
            if (
                r != region
                or (namespace not in (None, "", NAMESPACE))
                or metric_name not in (None, "", metric)
            ):
                continue
            if since is not None and last < since:
                continue
            have = dict(dims)
            if all(name in have and (value in (None, "") or have[name] == value) for name, value in filters):
                found.append((metric, dims))
        found.sort()
        offset = offset_of(p.get("NextToken"))
        page = found[offset : offset + LIST_PAGE]
        out: Params = {
            "Metrics": [
                {
                    "Namespace": NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                }
                for metric, dims in page
            ]
        }
        if offset + LIST_PAGE < len(found):
            out["NextToken"] = next_token(offset + LIST_PAGE)
        return out
