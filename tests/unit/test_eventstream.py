"""lamina's event-stream encoder against botocore's decoder."""

from __future__ import annotations

from botocore.eventstream import EventStreamBuffer

from lamina.protocol.eventstream import event


def test_round_trip_through_botocore() -> None:
    buf = EventStreamBuffer()
    buf.add_data(
        event("PayloadChunk", b"\x00binary\xff", "application/octet-stream")
        + event("InvokeComplete", b"{}", "application/json")
    )
    first, second = list(buf)
    assert first.headers == {
        ":event-type": "PayloadChunk",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert first.payload == b"\x00binary\xff"
    assert second.headers[":event-type"] == "InvokeComplete" and second.payload == b"{}"
