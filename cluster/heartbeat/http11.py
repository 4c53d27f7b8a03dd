"""HTTP/1.1 on an asyncio protocol, one exchange at a time per connection: the wire half of the
heartbeat's high-rate client (`high_rate_client.py`). An answer is framed by Content-Length,
chunked encoding or the connection's close; anything else is a `BadAnswer`."""

from __future__ import annotations

import asyncio

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024  # a heartbeat answer is under 2 KiB


class BadAnswer(Exception):
    """The agent answered something that is not an HTTP/1.1 answer we can read."""


class Connection(asyncio.Protocol):
    """One connection to one agent, one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future | None = None
        self.head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start
        self.closed = False
        self.received = False  # any byte of the current answer

    # asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.buffer += data
        if self.answer is not None and not self.answer.done():
            try:
                self._try_complete(closed=False)
            except BadAnswer as error:
                self.answer.set_exception(error)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            try:
                if not self._try_complete(closed=True):
                    self.answer.set_exception(ConnectionResetError("the agent closed the connection"))
            except BadAnswer as error:
                self.answer.set_exception(error)

    # exchanges ----------------------------------------------------------------------------------
    async def exchange(self, request: bytes, deadline: float) -> tuple[int, bytes, bool]:
        """(status, body, reusable), or TimeoutError at the deadline (a timer on the answer: cheaper
        than asyncio.timeout, and a probe makes thousands of these a second)."""
        loop = asyncio.get_running_loop()
        self.answer = answer = loop.create_future()
        self.head, self.received = None, False
        self.buffer.clear()
        assert self.transport is not None, "connection_made comes first"
        self.transport.write(request)
        timer = loop.call_at(deadline, _expire, answer)
        try:
            return await answer
        finally:
            timer.cancel()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _try_complete(self, closed: bool) -> bool:
        assert self.answer is not None, "called while an exchange waits for its answer"
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise BadAnswer("answer headers too long")
                return False
            self.head = _parse_head(bytes(self.buffer[:end]), end + 4)
        status, headers, start = self.head
        reusable = not closed and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _dechunk(self.buffer, start)
            if decoded is None:
                return self._incomplete(closed)
            body, end = decoded
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise BadAnswer("bad Content-Length") from None
            if length > MAX_BODY or length < 0:
                raise BadAnswer(f"answer of {length} bytes")
            end = start + length
            if len(self.buffer) < end:
                return self._incomplete(closed)
            body = bytes(self.buffer[start:end])
        elif status in (204, 304):
            body, end = b"", start
        else:  # framed by the connection's close
            if not closed:
                if len(self.buffer) - start > MAX_BODY:
                    raise BadAnswer("answer too long")
                return False
            body, end, reusable = bytes(self.buffer[start:]), len(self.buffer), False
        self.answer.set_result((status, body, reusable and end == len(self.buffer)))
        return True

    @staticmethod
    def _incomplete(closed: bool) -> bool:
        if closed:
            raise BadAnswer("the agent closed the connection in the middle of its answer")
        return False


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())


def _parse_head(head: bytes, body_start: int) -> tuple[int, dict[str, str], int]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit() or code.startswith("1"):
        raise BadAnswer(f"not an HTTP/1.1 answer: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadAnswer(f"bad header line: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(code), headers, body_start


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end) of a complete chunked body at `start`, or None while more is to come."""
    body, position = bytearray(), start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        except ValueError:
            raise BadAnswer("bad chunk size") from None
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        if len(body) > MAX_BODY:
            raise BadAnswer("answer too long")
        position += size + 2
