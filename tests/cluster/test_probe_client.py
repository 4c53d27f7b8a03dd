"""The heartbeat worker's HTTP client against real servers on loopback: what a probe gets back for
each way an agent can answer, or not (cluster/heartbeat/high_rate_client.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop
from aiohttp import web

from cluster.heartbeat.high_rate_client import ProbeClient


def run(coroutine):
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _agent_like_server(handler):
    """An aiohttp server (what dms-agent runs) on a free port; returns (runner, base URL, peers seen)."""
    peers: list[int] = []

    async def endpoint(request: web.Request):
        peers.append(request.transport.get_extra_info("peername")[1])
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", peers


async def _raw_server(answer: bytes, close_after: bool):
    """A server that answers every request with exactly `answer`, for framings aiohttp never sends."""

    async def serve(reader, writer):
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_json_answer_comes_back_with_status_body_and_times_on_one_kept_alive_connection():
    async def scenario():
        async def heartbeat(request):
            body = await request.json()
            return web.json_response({"role": "primary", "echo": body, "auth": request.headers["Authorization"]})

        runner, url, peers = await _agent_like_server(heartbeat)
        client = ProbeClient()
        try:
            answers = [
                await client.call("POST", url + "/a/7", "/v1/heartbeat", "tok", {"epoch": 3, "lease_s": 2.0})
                for _ in range(5)
            ]
        finally:
            await client.close()
            await runner.cleanup()
        return answers, peers

    answers, peers = run(scenario())
    assert [a.status for a in answers] == [200] * 5
    assert answers[0].body == {"role": "primary", "echo": {"epoch": 3, "lease_s": 2.0}, "auth": "Bearer tok"}
    assert all(a.received_wall >= a.sent_wall > 0 for a in answers)
    assert len(set(peers)) == 1, "five calls should share one kept-alive connection"


def test_an_error_status_is_an_answer_and_a_refused_connection_is_marked_refused():
    async def scenario():
        async def unauthorized(request):
            return web.json_response({"error": "bad token"}, status=401)

        runner, url, _ = await _agent_like_server(unauthorized)
        client = ProbeClient()
        try:
            denied = await client.call("POST", url, "/v1/heartbeat", "wrong", {})
            refused = await client.call("POST", f"http://127.0.0.1:{free_port()}", "/v1/heartbeat", "t", {}, 1.0)
        finally:
            await client.close()
            await runner.cleanup()
        return denied, refused

    denied, refused = run(scenario())
    assert denied.status == 401 and denied.answered and denied.body == {"error": "bad token"}
    assert refused.status == 0 and refused.refused and refused.error.startswith("cannot connect")


def test_a_silent_agent_is_no_answer_within_the_deadline_and_the_next_call_works():
    async def scenario():
        calls = []

        async def first_silent(request):
            calls.append(1)
            if len(calls) == 1:
                await asyncio.sleep(1)  # well past the 0.3 s deadline
            return web.json_response({"ok": True})

        runner, url, _ = await _agent_like_server(first_silent)
        client = ProbeClient()
        try:
            started = asyncio.get_running_loop().time()
            silent = await client.call("POST", url, "/v1/heartbeat", "t", {}, 0.3)
            waited = asyncio.get_running_loop().time() - started
            after = await client.call("POST", url, "/v1/heartbeat", "t", {}, 1.0)
        finally:
            await client.close()
            await runner.cleanup()
        return silent, waited, after

    silent, waited, after = run(scenario())
    assert silent.status == 0 and not silent.refused and "no answer within 0.3 s" in silent.error
    assert 0.25 < waited < 1.0
    assert after.status == 200 and after.body == {"ok": True}


@pytest.mark.parametrize(
    "answer, close_after, expected",
    [
        (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n', False, {"a": 1}),
        (b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"b": 2}', True, {"b": 2}),
        (b'HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\n{"c": 3}', True, {"c": 3}),
    ],
    ids=["chunked", "until-close", "http-1.0"],
)
def test_answers_framed_otherwise_are_read_whole(answer, close_after, expected):
    async def scenario():
        server, url = await _raw_server(answer, close_after)
        client = ProbeClient()
        try:
            return [await client.call("POST", url, "/v1/heartbeat", "t", {}, 1.0) for _ in range(2)]
        finally:
            await client.close()
            server.close()

    answers = run(scenario())
    assert [(a.status, a.body) for a in answers] == [(200, expected)] * 2


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut":'],
    ids=["not-http", "cut-short"],
)
def test_garbage_or_a_cut_answer_is_no_answer_not_a_crash(garbage):
    async def scenario():
        server, url = await _raw_server(garbage, close_after=True)
        client = ProbeClient()
        try:
            return await client.call("POST", url, "/v1/heartbeat", "t", {}, 1.0)
        finally:
            await client.close()
            server.close()

    answer = run(scenario())
    assert answer.status == 0 and not answer.answered and answer.error


def test_a_kept_connection_the_agent_closed_meanwhile_is_not_used_again():
    async def scenario():
        # Keep-alive framing (Content-Length, no "Connection: close"), then the agent hangs up, as
        # an agent's keep-alive timeout or restart does.
        server, url = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", close_after=True)
        client = ProbeClient()
        try:
            first = await client.call("POST", url, "/v1/heartbeat", "t", {}, 1.0)
            kept = [c for connections in client.idle.values() for c in connections]
            deadline = asyncio.get_running_loop().time() + 2
            while not all(c.closed for c in kept) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            second = await client.call("POST", url, "/v1/heartbeat", "t", {}, 1.0)
        finally:
            await client.close()
            server.close()
        return first, kept, second

    first, kept, second = run(scenario())
    assert first.status == 200 and len(kept) == 1 and kept[0].closed
    assert second.status == 200


def test_plain_http_off_loopback_and_header_injection_are_refused_before_anything_is_sent():
    async def scenario():
        client = ProbeClient()
        remote = await client.call("POST", "http://192.0.2.10:8443", "/v1/heartbeat", "t", {})
        injected = await client.call("POST", "http://127.0.0.1:9", "/v1/heartbeat", "t\r\nX-Evil: 1", {})
        await client.close()
        return remote, injected

    remote, injected = run(scenario())
    assert remote.status == 0 and "plain HTTP is allowed on loopback only" in remote.error
    assert injected.status == 0 and "line break" in injected.error
