"""A TCP proxy that delays what passes through it: `tc netem` is missing on this kernel, so delay and
jitter come from this instead. The nemesis starts it inside an appliance's namespace and redirects
new connections to the agent's port there (nftables `redirect`), so the agent's address stays real;
the proxy finds where each connection was going with SO_ORIGINAL_DST and forwards it there. Each
chunk is held `delay ± jitter` and never overtakes the one before it (TCP keeps order). TLS passes
through untouched. Standard library only: it runs as `python -m tests.nemesis.delayproxy`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import time

SO_ORIGINAL_DST = 80


def original_destination(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, jitter: float, rng) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    delivery = asyncio.ensure_future(deliver())
    last_due = 0.0
    try:
        while True:
            chunk = await reader.read(65536)
            last_due = max(last_due, time.monotonic() + delay + rng.uniform(0, jitter))
            await queue.put((last_due, chunk))
            if not chunk:
                break
        await delivery
    except (ConnectionError, OSError):
        pass
    finally:
        delivery.cancel()
        writer.close()


async def serve(port: int, delay: float, jitter: float, seed: int) -> None:
    rng = random.Random(seed)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        host, dport = original_destination(client_writer.get_extra_info("socket"))
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, dport)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, upstream_writer, delay, jitter, rng),
            pump(upstream_reader, client_writer, delay, jitter, rng),
        )

    server = await asyncio.start_server(handle, "0.0.0.0", port, reuse_address=True)
    print(f"delayproxy: listening on {port}, delay {delay}s jitter {jitter}s", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, required=True, help="seconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="seconds, uniform on top of the delay")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay, args.jitter, args.seed))


if __name__ == "__main__":
    main()
