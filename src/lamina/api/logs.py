"""The CloudWatch Logs API (json protocol, ``X-Amz-Target: Logs_20140328.<Operation>``).

``LogsService.handle`` is the one entry point the HTTP layer calls: parse and validate from the
botocore model, run the handler, serialize.  Groups and streams are here; events (get, filter,
put) in lamina.api.logs_events.  Every handler is a thin adapter over the log store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lamina.api import logs_events
from lamina.api.logs_support import (
    LogsError,
    decode_token,
    encode_token,
    group_arn,
    group_name,
    invalid,
    not_found,
)
from lamina.protocol.jsonrpc import JsonProtocol
from lamina.protocol.model import load_service_model
from lamina.telemetry import logmaint, logquery
from lamina.telemetry.logstore import LogStore
from lamina.types import Output, Params, RequestContext

LogsHandler = Callable[[RequestContext, Params], Awaitable[Output | None]]
TARGET_PREFIX = "Logs_20140328"
_DESCRIBE_LIMIT = 50


def _retention_problem(days: int) -> str:
    allowed = ", ".join(str(d) for d in logmaint.RETENTION_DAYS)
    return (
        f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{allowed}]"
    )


class LogsService:
    def __init__(self, store: LogStore, account_id: str) -> None:
        self._store = store
        self._account = account_id
        self._protocol = JsonProtocol(
            load_service_model("logs"), validation_code="InvalidParameterException", error=LogsError
        )
        events = logs_events.LogEventHandlers(store)
        self._handlers: dict[str, LogsHandler] = {
            "CreateLogGroup": self.create_log_group,
            "DeleteLogGroup": self.delete_log_group,
            "PutRetentionPolicy": self.put_retention_policy,
            "DeleteRetentionPolicy": self.delete_retention_policy,
            "CreateLogStream": self.create_log_stream,
            "DeleteLogStream": self.delete_log_stream,
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": events.get_log_events,
            "FilterLogEvents": events.filter_log_events,
            "PutLogEvents": events.put_log_events,
        }

    async def handle(self, operation: str, body: bytes, ctx: RequestContext) -> bytes:
        op = self._protocol.operation(operation)
        handler = self._handlers.get(operation)
        if handler is None:
            # StartLiveTail answers an event stream (and botocore sends it to a "streaming-" host
            # prefix): polling FilterLogEvents is the follow path here, as `aws logs tail` does.
            hint = ""
            if operation == "StartLiveTail":
                hint = " Follow logs with FilterLogEvents (`lamina logs NAME --follow`)."
            raise LogsError(
                "NotImplementedException", f"lamina does not implement the {operation} operation yet.{hint}"
            )
        params = self._protocol.parse(op, body)
        return self._protocol.serialize(op, await handler(ctx, params))

    # ---- groups --------------------------------------------------------------------------------

    async def create_log_group(self, ctx: RequestContext, params: Params) -> None:
        name, now = params["logGroupName"], self._store.now_ms()
        if not await self._store.write(lambda c: logmaint.create_group(c, name, now)):
            raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists")

    async def delete_log_group(self, ctx: RequestContext, params: Params) -> None:
        name = params["logGroupName"]
        if not await self._store.write(lambda c: logmaint.delete_group(c, name)):
            raise not_found()
        self._store.guard.forget(name)

    async def put_retention_policy(self, ctx: RequestContext, params: Params) -> None:
        name, days = params["logGroupName"], params["retentionInDays"]
        if days not in logmaint.RETENTION_DAYS:
            raise invalid(_retention_problem(days))
        if not await self._store.write(lambda c: logmaint.set_retention(c, name, days)):
            raise not_found()
        await self._store.expire()  # enforced now, not only at the next maintenance round

    async def delete_retention_policy(self, ctx: RequestContext, params: Params) -> None:
        name = params["logGroupName"]
        if not await self._store.write(lambda c: logmaint.set_retention(c, name, None)):
            raise not_found()

    async def describe_log_groups(self, ctx: RequestContext, params: Params) -> Output:
        prefix, contains = params.get("logGroupNamePrefix"), params.get("logGroupNamePattern")
        if prefix and contains:
            raise invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
        token = params.get("nextToken")
        after = str(decode_token("groups", token)) if token else None
        limit = params.get("limit", _DESCRIBE_LIMIT)
        groups, more = await self._store.read(
            lambda c: logquery.describe_groups(c, prefix=prefix, contains=contains, after=after, limit=limit)
        )
        out: Output = {"logGroups": [self._group(ctx, g) for g in groups]}
        if more is not None:
            out["nextToken"] = encode_token("groups", more)
        return out

    def _group(self, ctx: RequestContext, g: logquery.GroupRow) -> dict[str, Any]:
        arn = group_arn(ctx.region, self._account, g.name)
        return {
            "logGroupName": g.name,
            "creationTime": g.created_ms,
            "retentionInDays": g.retention_days,
            "metricFilterCount": 0,
            "arn": arn + ":*",
            "logGroupArn": arn,
            "storedBytes": g.stored_bytes,
            "logGroupClass": "STANDARD",
        }

    # ---- streams -------------------------------------------------------------------------------

    async def create_log_stream(self, ctx: RequestContext, params: Params) -> None:
        group, stream, now = params["logGroupName"], params["logStreamName"], self._store.now_ms()

        def create(c: Any) -> bool | None:
            if not logmaint.group_exists(c, group):
                return None
            return logmaint.create_stream(c, group, stream, now)

        created = await self._store.write(create)
        if created is None:
            raise not_found()
        if not created:
            raise LogsError("ResourceAlreadyExistsException", "The specified log stream already exists")

    async def delete_log_stream(self, ctx: RequestContext, params: Params) -> None:
        group, stream = params["logGroupName"], params["logStreamName"]

        def delete(c: Any) -> bool | None:
            return logmaint.delete_stream(c, group, stream) if logmaint.group_exists(c, group) else None

        deleted = await self._store.write(delete)
        if deleted is None:
            raise not_found()
        if not deleted:
            raise not_found("The specified log stream does not exist.")

    async def describe_log_streams(self, ctx: RequestContext, params: Params) -> Output:
        group = group_name(params)
        by_time = params.get("orderBy") == "LastEventTime"
        prefix = params.get("logStreamNamePrefix")
        if by_time and prefix:
            raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        descending = bool(params.get("descending", False))
        token = params.get("nextToken")
        after = None
        if token:
            value = decode_token("streams", token)
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
                raise invalid("The specified nextToken is invalid.")
            after = (value[0], str(value[1]))
        limit = params.get("limit", _DESCRIBE_LIMIT)

        def read(c: Any) -> tuple[list[logquery.StreamRow], tuple[int, str] | None] | None:
            if not logmaint.group_exists(c, group):
                return None
            return logquery.describe_streams(
                c, group, prefix=prefix, by_time=by_time, descending=descending, after=after, limit=limit
            )

        found = await self._store.read(read)
        if found is None:
            raise not_found()
        streams, more = found
        arn = group_arn(ctx.region, self._account, group)
        out: Output = {
            "logStreams": [
                {
                    "logStreamName": s.name,
                    "creationTime": s.created_ms,
                    "firstEventTimestamp": s.first_event_ms,
                    "lastEventTimestamp": s.last_event_ms,
                    "lastIngestionTime": s.last_ingestion_ms,
                    "arn": f"{arn}:log-stream:{s.name}",
                    "storedBytes": s.stored_bytes,
                }
                for s in streams
            ]
        }
        if more is not None:
            out["nextToken"] = encode_token("streams", list(more))
        return out
