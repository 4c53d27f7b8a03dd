"""An SMTP server for tests: aiosmtpd on a free loopback port, keeping every message it accepts.

    with SmtpServer() as smtp:
        ...send to ("127.0.0.1", smtp.port)...
        mail = smtp.wait_for(lambda m: m.message_id == "<dms-event-1.rule-2@dms-failover>")

`stop()` and `start()` simulate a mail server that is down and back (same port); `refuse` maps
recipient addresses to an SMTP reply ("550 5.1.1 No such user") to simulate refusals.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip()  # a long header may arrive folded

    def header(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value)

    def body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"no text/{subtype} part"
        return part.get_content()  # type: ignore[no-any-return, union-attr]

    @property
    def text(self) -> str:
        return self.body("plain")

    @property
    def html(self) -> str:
        return self.body("html")


@dataclass
class _Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
        with self.lock:
            self.received.append(mail)
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_tcp_port()
        self.handler = _Handler()
        self.controller: Controller | None = None

    @property
    def refuse(self) -> dict[str, str]:
        return self.handler.refuse

    def start(self) -> SmtpServer:
        if self.controller is None:
            # Controller.start() returns once the server answers (it connects to itself).
            controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=5)
            controller.start()
            self.controller = controller
        return self

    def stop(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def matching(self, predicate: Callable[[ReceivedMail], bool]) -> list[ReceivedMail]:
        return [mail for mail in self.messages if predicate(mail)]

    def wait_for(
        self, predicate: Callable[[ReceivedMail], bool] = lambda mail: True, timeout: float = 5.0
    ) -> ReceivedMail:
        """The first accepted message matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for mail in self.messages:
                if predicate(mail):
                    return mail
            if time.monotonic() > deadline:
                subjects = [mail.subject for mail in self.messages]
                raise AssertionError(f"no matching message within {timeout}s; received: {subjects}")
            time.sleep(0.01)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()
