"""Checks of invariant 1 (never two serving primaries), white-box and black-box.

White box: each agent's serving log gives its serving intervals on the agent's clock
(`agent.clock.mono`, the host's CLOCK_BOOTTIME, shared by every process on this machine), so
`assert_no_overlap` compares them directly.

Black box: `PrimaryPoller` asks several `/v1/primary` URLs every 100 ms, recording each answer's
send and receive time on that same clock (`clock()`: tests compare their own readings with the
answers and the logs through it, never through `time.monotonic()`, which stops while the host is
suspended). An answer was produced somewhere inside its [send, receive] window, so two
200s overlap for certain only when one URL is known to serve through a whole stretch in which the
other answered 200: see `PrimaryPoller.check_no_overlap`.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from agent.clock import mono as clock

Interval = tuple[float, float]


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def assert_no_overlap(*interval_lists: Sequence[Interval]) -> None:
    """Fail if any interval of one list overlaps any interval of another list.

    Each argument is one agent's serving intervals (e.g. `AgentProcess.serving_intervals()`).
    """
    problems = []
    for i, first in enumerate(interval_lists):
        for j in range(i + 1, len(interval_lists)):
            for a in first:
                for b in interval_lists[j]:
                    if overlaps(a, b):
                        problems.append(
                            f"list {i} {a} overlaps list {j} {b} by {min(a[1], b[1]) - max(a[0], b[0]):.3f}s"
                        )
    assert not problems, "serving intervals overlap:\n" + "\n".join(problems)


@dataclass(frozen=True)
class Answer:
    url: str
    sent: float  # clock() before the request left
    received: float  # clock() after the answer (or the error) came back
    status: int | None  # None: no answer (refused, timeout)


class PrimaryPoller:
    """Polls `GET <base>/v1/primary` of several agents, one thread per URL.

    Use as a context manager, or `start()` / `stop()`. `ssl_context` is used for https URLs.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        period: float = 0.1,
        timeout: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.urls = list(base_urls)
        self.period = period
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._answers: dict[str, list[Answer]] = {url: [] for url in self.urls}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> PrimaryPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PrimaryPoller:
        for url in self.urls:
            thread = threading.Thread(target=self._poll, args=(url,), daemon=True, name=f"poll {url}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 2)

    def answers(self, url: str | None = None) -> list[Answer]:
        with self._lock:
            if url is not None:
                return list(self._answers[url])
            return [a for answers in self._answers.values() for a in answers]

    def count(self, url: str, status: int | None) -> int:
        return sum(1 for a in self.answers(url) if a.status == status)

    def _poll(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        next_time = clock()
        while not self._stop.is_set():
            sent = clock()
            status = self._get(parts.scheme, parts.hostname or "", parts.port or 80)
            answer = Answer(base_url, sent, clock(), status)
            with self._lock:
                self._answers[base_url].append(answer)
            next_time = max(next_time + self.period, clock())
            self._stop.wait(next_time - clock())

    def _get(self, scheme: str, host: str, port: int) -> int | None:
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.request("GET", "/v1/primary")
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    # -- the check --------------------------------------------------------------------------

    def certain_spans(self, url: str) -> list[Interval]:
        """Stretches during which `url` surely served.

        Within a run of consecutive 200 answers (no other answer in between), the agent served
        at some moment ≤ the first answer's receive time and at some moment ≥ the last answer's
        send time; a primary that flapped off and on again between two polls (100 ms) would
        have answered something else, so it served throughout [first.received, last.sent].
        """
        spans = []
        run: list[Answer] = []
        for answer in self.answers(url) + [Answer(url, 0, 0, None)]:
            if answer.status == 200:
                run.append(answer)
                continue
            if len(run) >= 2 and run[0].received < run[-1].sent:
                spans.append((run[0].received, run[-1].sent))
            run = []
        return spans

    def violations(self) -> list[str]:
        problems = []
        spans = {url: self.certain_spans(url) for url in self.urls}
        for url in self.urls:
            for other in self.urls:
                if other == url:
                    continue
                for span in spans[url]:
                    for answer in self.answers(other):
                        if answer.status == 200 and span[0] <= answer.sent and answer.received <= span[1]:
                            problems.append(
                                f"{other} answered 200 in [{answer.sent:.3f}, "
                                f"{answer.received:.3f}] while {url} served "
                                f"throughout [{span[0]:.3f}, {span[1]:.3f}]"
                            )
                    if url < other:
                        for span2 in spans[other]:
                            if overlaps(span, span2):
                                problems.append(f"{url} served throughout {span} and {other} throughout {span2}")
        return problems

    def check_no_overlap(self) -> None:
        """Fail if two URLs answered 200 in windows that must have overlapped."""
        problems = self.violations()
        assert not problems, "two primaries served at once:\n" + "\n".join(problems[:20])
