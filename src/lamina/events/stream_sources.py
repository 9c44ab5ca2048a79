"""What differs between Kinesis and DynamoDB Streams for a stream poller: the calls and the records.

Both are read shard by shard with shard iterators; a shard is closed once it has an ending
sequence number (resharding, or a DynamoDB stream shard's rotation) and its children start after
it.  ``StreamSource`` hides the two APIs; the records it builds are AWS's event records.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_id: str | None
    closed: bool  # it has an ending sequence number: read to its end, then its children


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value or 0.0)


class StreamSource:
    """Kinesis (``kind`` "kinesis") or DynamoDB Streams ("dynamodb") behind one interface.
    Every method blocks (boto3): call them through the mapping service's thread pool."""

    def __init__(self, kind: str, arn: str, client: Any) -> None:
        self.kind = kind
        self.arn = arn
        self.region = arn.split(":")[3]
        self._client = client

    def shards(self) -> list[Shard]:
        out: list[Shard] = []
        if self.kind == "kinesis":
            token: str | None = None
            while True:
                page = (
                    self._client.list_shards(NextToken=token)
                    if token
                    else self._client.list_shards(StreamARN=self.arn)
                )
                out.extend(self._shard(s) for s in page.get("Shards", []))
                token = page.get("NextToken")
                if not token:
                    return out
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            desc = self._client.describe_stream(**kwargs)["StreamDescription"]
            out.extend(self._shard(s) for s in desc.get("Shards", []))
            start = desc.get("LastEvaluatedShardId")
            if not start:
                return out

    @staticmethod
    def _shard(raw: dict[str, Any]) -> Shard:
        ending = (raw.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")
        return Shard(raw["ShardId"], raw.get("ParentShardId"), ending is not None)

    def iterator(self, shard_id: str, *, after: str | None, position: str, at: float | None) -> str:
        kwargs: dict[str, Any] = {"ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        elif position == "AT_TIMESTAMP":
            kwargs.update(
                ShardIteratorType="AT_TIMESTAMP", Timestamp=dt.datetime.fromtimestamp(at or 0, dt.UTC)
            )
        else:
            kwargs["ShardIteratorType"] = position
        if self.kind == "kinesis":
            return str(self._client.get_shard_iterator(StreamARN=self.arn, **kwargs)["ShardIterator"])
        return str(self._client.get_shard_iterator(StreamArn=self.arn, **kwargs)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` raw records and the next iterator (None: the closed shard is done)."""
        if self.kind == "kinesis":
            out = self._client.get_records(
                ShardIterator=iterator, Limit=min(limit, 10000), StreamARN=self.arn
            )
        else:
            out = self._client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        return list(out.get("Records", [])), out.get("NextShardIterator")

    def sequence(self, raw: dict[str, Any]) -> str:
        return str(raw["SequenceNumber"] if self.kind == "kinesis" else raw["dynamodb"]["SequenceNumber"])

    def arrival(self, raw: dict[str, Any]) -> float:
        if self.kind == "kinesis":
            return _epoch(raw.get("ApproximateArrivalTimestamp"))
        return _epoch(raw["dynamodb"].get("ApproximateCreationDateTime"))

    def partition_key(self, raw: dict[str, Any]) -> str:
        if self.kind == "kinesis":
            return str(raw.get("PartitionKey", ""))
        return repr(sorted((raw["dynamodb"].get("Keys") or {}).items()))

    def record(self, raw: dict[str, Any], shard_id: str, role: str) -> dict[str, Any]:
        """AWS's event record for ``raw``."""
        if self.kind == "kinesis":
            return {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": raw.get("PartitionKey", ""),
                    "sequenceNumber": raw["SequenceNumber"],
                    "data": base64.b64encode(raw.get("Data", b"")).decode(),
                    "approximateArrivalTimestamp": round(self.arrival(raw), 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{raw['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role,
                "awsRegion": self.region,
                "eventSourceARN": self.arn,
            }
        ddb = dict(raw["dynamodb"])
        ddb["ApproximateCreationDateTime"] = round(self.arrival(raw))
        return {
            "eventID": raw.get("eventID", ""),
            "eventName": raw.get("eventName", ""),
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": raw.get("awsRegion", self.region),
            "dynamodb": ddb,
            "eventSourceARN": self.arn,
        }

    def filter_view(self, raw: dict[str, Any], shard_id: str, role: str) -> dict[str, Any]:
        """What a FilterCriteria pattern sees: Kinesis filters only on ``data`` (parsed when it is
        JSON); DynamoDB on the whole record."""
        if self.kind != "kinesis":
            return self.record(raw, shard_id, role)
        data = raw.get("Data", b"")
        try:
            return {"data": json.loads(data)}
        except (ValueError, RecursionError):
            return {"data": data.decode(errors="replace")}

    def batch_info(self, shard_id: str, raws: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """The OnFailure record's batch member: KinesisBatchInfo / DDBStreamBatchInfo."""
        first, last = raws[0], raws[-1]
        info = {
            "shardId": shard_id,
            "startSequenceNumber": self.sequence(first),
            "endSequenceNumber": self.sequence(last),
            "approximateArrivalOfFirstRecord": _iso(self.arrival(first)),
            "approximateArrivalOfLastRecord": _iso(self.arrival(last)),
            "batchSize": len(raws),
            "streamArn": self.arn,
        }
        return ("KinesisBatchInfo" if self.kind == "kinesis" else "DDBStreamBatchInfo"), info


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
