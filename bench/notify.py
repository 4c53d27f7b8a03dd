"""Notification latency and trap throughput through the product's outbox and a real Celery worker.

Receivers: a real net-snmp snmptrapd (v2c community) and an aiosmtpd server in this process
(tests/support/snmptrapd.py and smtp.py). One worker on the `default` queue (`-c 4`, the operator
guide's, unless `--concurrency`), started with EMAIL_HOST/EMAIL_PORT pointing at the aiosmtpd server and a fixed
SNMP_ENGINE_ID. The cluster row is bulk-created (no save(): nothing configures agents).

1. Fan-out: one `server_failed` event matching 100 rules (50 SNMP v2c traps, 50 emails), recorded
   with `record_event` in this process, `--trials` times. Latency = the event's commit → the last
   of the 100 notifications received (50 traps carrying the event id in snmptrapd's log, 50
   messages with its X-DMS-Event-Id at the SMTP server), polled every 5 ms (snmptrapd's log read
   incrementally, so the polling costs the shared CPUs little).
2. Throughput: `--traps` trap deliveries (10 events × 50 trap rules, one transaction) drained by
   the one worker: traps per second, commit → last trap received, and the worker's own rate (first
   attempt started → last attempt finished, from the DeliveryAttempt rows).

    .venv/bin/python bench/notify.py [--trials 5] [--traps 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.transports import snmp_oids as oids  # noqa: E402
from bench._common import (  # noqa: E402
    celery_worker,
    load_note,
    log_dir,
    percentile,
    prepare,
    stop_all,
    wait_until,
)

ENGINE_ID = "80007ed905626e6f74696679"  # format 5 (octets) "bnotify"
TARGET_FANOUT_S = 3.0
RULES_PER_CHANNEL = 50
POLL_S = 0.005
NAME = "notify-bench"
EVENT_ID_OID = oids.dotted(oids.EVENT_ID + (0,))  # dmsEventId.0


def setup_rows(trapd_port: int, community: str):
    from alerts.models import NotificationRule
    from cluster.hardware import EXAMPLE
    from cluster.models import Cluster, Server

    cleanup()  # an earlier run's rows, if it was cut off
    servers = Server.objects.bulk_create(
        Server(
            name=f"{NAME}-{side}",
            application="dmm",
            part_number=part,
            hardware=copy.deepcopy(EXAMPLE),
            heartbeat_url="http://127.0.0.1:9/",
            intranet_url="http://127.0.0.1:9/",
        )
        for side, part in (("a", "DMM-SVR-C210-K9"), ("b", "DMM-FA-C210-K9"))
    )
    (cluster,) = Cluster.objects.bulk_create(
        [Cluster(name=NAME, application="dmm", primary=servers[0], secondary=servers[1])]
    )
    rules = [
        NotificationRule(
            name=f"{NAME}-trap-{i:02d}",
            channel="snmp",
            event_types=["server_failed", "server_recovered", "heartbeat_link_down"],
            host="127.0.0.1",
            port=trapd_port,
            snmp_version="v2c",
            community=community,
        )
        for i in range(RULES_PER_CHANNEL)
    ] + [
        NotificationRule(
            name=f"{NAME}-mail-{i:02d}",
            channel="email",
            event_types=["server_failed", "server_recovered"],
            recipients=[f"noc{i}@example.com"],
        )
        for i in range(RULES_PER_CHANNEL)
    ]
    NotificationRule.objects.bulk_create(rules)
    return cluster, servers[0]


def cleanup() -> None:
    from alerts.models import Event, NotificationRule
    from cluster.models import Cluster, Server

    Event.objects.filter(cluster__name=NAME).delete()
    NotificationRule.objects.filter(name__startswith=NAME).delete()
    Cluster.objects.filter(name=NAME).delete()
    Server.objects.filter(name__startswith=NAME).delete()


def final_statuses(event_ids: list[int], timeout: float = 30) -> list[str]:
    """The deliveries' statuses once none is pending or sending (the last receipt can come before
    the worker has committed its row)."""
    from alerts.models import Delivery

    rows = Delivery.objects.filter(event_id__in=event_ids)
    wait_until(lambda: not rows.filter(status__in=["pending", "sending"]).exists(), timeout, 0.05, "the rows")
    return sorted(set(rows.values_list("status", flat=True)))


def record(event_type: str, cluster, server, count: int = 1) -> tuple[list[int], float]:
    """`count` events in one transaction; returns their ids and the monotonic time of the commit."""
    from django.db import transaction

    from alerts.events import record_event

    committed: list[float] = []
    with transaction.atomic():
        # Registered first, so it runs first after the commit, before the deliveries are queued.
        transaction.on_commit(lambda: committed.append(time.monotonic()))
        ids = [
            record_event(event_type, f"{server.name} missed 3 heartbeats (bench).", cluster=cluster, server=server).pk
            for _ in range(count)
        ]
    return ids, committed[0]


class TrapLog:
    """snmptrapd's log read incrementally (only what was appended), so that polling it every few
    milliseconds costs little CPU beside the measured worker; counts traps per event id."""

    def __init__(self, trapd) -> None:
        self.path = trapd.log
        self.offset = 0
        self.pending = ""
        self.counts: Counter[int] = Counter()

    def poll(self) -> Counter[int]:
        from tests.support.snmptrapd import RECORD_END, parse_log

        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return self.counts
        self.offset += len(data)
        text = self.pending + data.decode(errors="replace")
        complete, _, self.pending = text.rpartition(RECORD_END)
        if complete:
            for trap in parse_log(complete + RECORD_END):
                self.counts[trap.varbinds.get(EVENT_ID_OID)] += 1
        return self.counts


class MailLog:
    """The SMTP server's messages counted per X-DMS-Event-Id, looking only at new ones."""

    def __init__(self, smtp) -> None:
        self.smtp = smtp
        self.seen = 0
        self.counts: Counter[str] = Counter()

    def poll(self) -> Counter[str]:
        messages = self.smtp.messages
        for mail in messages[self.seen :]:
            self.counts[mail.header("X-DMS-Event-Id")] += 1
        self.seen = len(messages)
        return self.counts


def fanout_trial(traps_log: TrapLog, mails_log: MailLog, cluster, server, timeout: float = 60) -> dict:

    (event_id,), committed = record("server_failed", cluster, server)
    header = str(event_id)
    first = traps_done = mails_done = None
    deadline = committed + timeout
    while True:
        now = time.monotonic()
        traps = traps_log.poll()[event_id]
        mails = mails_log.poll()[header]
        if first is None and traps + mails:
            first = now
        if traps_done is None and traps >= RULES_PER_CHANNEL:
            traps_done = now
        if mails_done is None and mails >= RULES_PER_CHANNEL:
            mails_done = now
        if traps_done and mails_done:
            break
        if now > deadline:
            raise TimeoutError(f"event {event_id}: {traps} traps and {mails} mails after {timeout} s")
        time.sleep(POLL_S)
    statuses = final_statuses([event_id])
    return {
        "event": event_id,
        "all": max(traps_done, mails_done) - committed,
        "first": first - committed,
        "traps": traps_done - committed,
        "mails": mails_done - committed,
        "exact": traps == RULES_PER_CHANNEL and mails == RULES_PER_CHANNEL,
        "statuses": statuses,
    }


def throughput(traps_log: TrapLog, cluster, server, deliveries: int, timeout: float = 300) -> dict:
    from django.db.models import Max, Min

    from alerts.models import DeliveryAttempt

    events = max(1, deliveries // RULES_PER_CHANNEL)
    ids, committed = record("heartbeat_link_down", cluster, server, count=events)
    wanted = set(ids)
    expected = events * RULES_PER_CHANNEL
    deadline = committed + timeout
    while True:
        counts = traps_log.poll()
        got = sum(counts[i] for i in wanted)
        if got >= expected:
            done = time.monotonic()
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{got} of {expected} traps after {timeout} s")
        time.sleep(POLL_S)
    window = DeliveryAttempt.objects.filter(delivery__event_id__in=ids).aggregate(
        start=Min("started_at"), end=Max("finished_at")
    )
    worker_s = (window["end"] - window["start"]).total_seconds()
    return {
        "deliveries": expected,
        "received": got,
        "elapsed": done - committed,
        "rate": expected / (done - committed),
        "worker_s": worker_s,
        "worker_rate": expected / worker_s,
        "statuses": final_statuses(ids),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5, help="fan-out trials (default 5)")
    parser.add_argument("--traps", type=int, default=500, help="trap deliveries for the throughput (default 500)")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's -c (default 4)")
    args = parser.parse_args()
    prepare()
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    from tests.support.smtp import SmtpServer
    from tests.support.snmptrapd import Snmptrapd, available

    if not available():
        raise SystemExit("snmptrapd is not installed (Debian package snmptrapd)")
    logs = log_dir("bench-notify")
    print(f"logs under {logs}; {load_note()}", flush=True)
    trapd = Snmptrapd(logs / "snmptrapd", sender_engine_id=ENGINE_ID).start()
    smtp = SmtpServer().start()
    try:
        cluster, server = setup_rows(trapd.port, trapd.community)
        env = {
            "SNMP_ENGINE_ID": ENGINE_ID,
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp.port),
        }
        celery_worker(logs, "default", "notify", concurrency=args.concurrency, **env)
        print(f"worker -Q default -c {args.concurrency} ready; snmptrapd udp:{trapd.port}, smtp {smtp.port}")

        print(f"\n1. one server_failed event → {2 * RULES_PER_CHANNEL} rules ({RULES_PER_CHANNEL} v2c traps, "
              f"{RULES_PER_CHANNEL} emails), {args.trials} trials:", flush=True)  # fmt: skip
        trials = []
        traps_log, mails_log = TrapLog(trapd), MailLog(smtp)
        for n in range(args.trials):
            result = fanout_trial(traps_log, mails_log, cluster, server)
            trials.append(result)
            print(
                f"  trial {n + 1}: all 100 received {result['all']:.3f} s after the commit (first "
                f"{result['first']:.3f}, traps done {result['traps']:.3f}, mails done {result['mails']:.3f}); "
                f"exactly once: {result['exact']}; statuses {result['statuses']}",
                flush=True,
            )
        totals = [t["all"] for t in trials]
        p50, worst = percentile(totals, 50), max(totals)
        verdict = "met" if worst <= TARGET_FANOUT_S else "MISSED"
        print(f"  commit → all 100 received: p50 {p50:.3f} s, max {worst:.3f} s (target ≤ {TARGET_FANOUT_S:g} s: "
              f"{verdict}); {load_note()}")  # fmt: skip

        print(f"\n2. {args.traps} trap deliveries, one worker (-c {args.concurrency}):", flush=True)
        result = throughput(traps_log, cluster, server, args.traps)
        print(
            f"  {result['received']} of {result['deliveries']} traps received in {result['elapsed']:.2f} s after the "
            f"commit: {result['rate']:.0f} traps/s; worker busy {result['worker_s']:.2f} s: "
            f"{result['worker_rate']:.0f} traps/s; statuses {result['statuses']}; {load_note()}"
        )
    finally:
        stop_all()
        trapd.stop()
        smtp.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
