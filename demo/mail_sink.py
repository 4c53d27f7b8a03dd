"""The demo's mail sink: an SMTP server on loopback that files every message it accepts.

    python -m demo.mail_sink --port 8025 --dir run/mail

`make run` (demo/services.py) starts it and points the web app and the workers at it, so the email
notifications of the demo's rules can be read without a mail server: one `.eml` file per message,
named by arrival time so that `ls` lists them in order. Each file is written under a temporary
name and renamed, so a reader never sees half a message. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from datetime import datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    """aiosmtpd handler: accepts every recipient and files each message's bytes as they arrived."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        name = f"{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{next(self.count):04d}.eml"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(envelope.original_content or b"")
        os.replace(partial, self.folder / name)
        print(f"{name}: from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted"


async def serve(host: str, port: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    handler = Sink(folder)
    server = await loop.create_server(lambda: SMTP(handler, hostname="dms-demo-mail"), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"mail sink on {host}:{port}, one .eml file per message in {folder}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.mail_sink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the .eml files")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))


if __name__ == "__main__":
    main()
