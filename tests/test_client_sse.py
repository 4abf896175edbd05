"""The event-stream parser, fed the way a network delivers bytes: in arbitrary pieces."""

from __future__ import annotations

from handoff.client.sse import Frame, Parser

STREAM = (b"retry: 2000\nid: 5-0\n\n"
          b": keep-alive\n\n"
          b"id: 6-0\r\nevent: turn.appended\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
          b"data: no id of its own\n\n"
          b"event: server.closing\ndata: {\"last_event_id\": \"6-0\"}\n\n")
EXPECTED = [Frame("5-0", "message", None),
            Frame("6-0", "turn.appended", '{"a":\n1}'),
            Frame("6-0", "message", "no id of its own"),
            Frame("6-0", "server.closing", '{"last_event_id": "6-0"}')]


def test_a_stream_parses_the_same_whatever_pieces_it_arrives_in() -> None:
    for size in (1, 2, 3, 7, 64, len(STREAM)):
        parser = Parser()
        frames = [f for i in range(0, len(STREAM), size)
                  for f in parser.feed(STREAM[i:i + size])]
        assert frames == EXPECTED, size
        assert parser.retry_ms == 2000 and parser.last_id == "6-0"


def test_a_carriage_return_split_from_its_line_feed_is_one_line_end() -> None:
    parser = Parser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r\n") == [Frame(None, "message", "x")]


def test_a_block_without_a_blank_line_is_not_dispatched_yet() -> None:
    parser = Parser()
    assert parser.feed(b"id: 1-0\ndata: half") == []
    assert parser.feed(b"\n\n") == [Frame("1-0", "message", "half")]


def test_an_id_with_a_nul_is_ignored_and_a_non_numeric_retry_too() -> None:
    parser = Parser()
    parser.feed(b"id: 1-0\n\nid: 2\x00-0\nretry: soon\ndata: x\n\n")
    assert parser.last_id == "1-0" and parser.retry_ms is None
