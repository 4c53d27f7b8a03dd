"""The heartbeat batch hands its answers to evaluation in chunks while the rest are in flight
(cluster.tasks.Completed): every answer is evaluated once, and a batch whose probing fails stops
with that error instead of leaving the heartbeat worker waiting for answers that never come."""

import asyncio

import pytest

from cluster.tasks import Completed


def _drain(loop, completed, probing):
    chunks = []
    while chunk := loop.run_until_complete(completed.next_chunk(probing)):
        chunks.append(chunk)
    return chunks


def test_every_answer_is_handed_out_once_in_chunks_while_the_others_are_in_flight():
    loop = asyncio.new_event_loop()
    completed = Completed(total=25, chunk=10)

    async def probe_all():
        for n in range(25):
            await asyncio.sleep(0)
            completed.add(n)

    probing = loop.create_task(probe_all())
    chunks = _drain(loop, completed, probing)
    loop.run_until_complete(probing)
    loop.close()
    assert [n for chunk in chunks for n in chunk] == list(range(25))
    assert len(chunks) == 3 and all(len(chunk) >= 10 for chunk in chunks[:-1])


def test_a_batch_whose_probing_fails_stops_with_the_error():
    loop = asyncio.new_event_loop()
    completed = Completed(total=10, chunk=5)

    async def probe_all():
        completed.add("answered")
        await asyncio.sleep(0)
        raise ConnectionError("Redis went away while grants were recorded")

    probing = loop.create_task(probe_all())
    with pytest.raises(ConnectionError, match="Redis went away"):
        _drain(loop, completed, probing)
    loop.close()


def test_an_empty_batch_hands_out_nothing():
    loop = asyncio.new_event_loop()
    completed = Completed(total=0, chunk=5)

    async def nothing():
        return None

    probing = loop.create_task(nothing())
    assert _drain(loop, completed, probing) == []
    loop.run_until_complete(probing)
    loop.close()
