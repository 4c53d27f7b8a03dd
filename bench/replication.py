"""Replication throughput (DESIGN §5 Replication, §8 `/v1/sync`) next to `rsync -a`.

Two real agents (`python -m agent`) on loopback, configured primary and secondary at epoch 1
(`POST /v1/role`); the secondary pulls the primary's data through `POST /v1/sync` and is polled with
`GET /v1/sync/<id>`, the path the control plane's replication job takes. In the same run, `rsync -a`
copies the same directory into a fresh target.

1. Initial sync of the data set (default 10,000 files, 1 GiB: most small, some large) into an empty
   secondary, `--repeat` times (the secondary's data directory emptied in between), then rsync into
   a fresh target as many times.
2. Incremental: 1 % of the primary's files get new contents (same sizes); the agents sync the
   change, rsync copies the changed tree into its last target (which lacks the same change).
3. A sync with nothing changed (the cost of comparing manifests).
4. Optionally (`--control-plane`) one more incremental through the real job
   (`cluster.replication.Replication`, in this process, on the bench database).

The data set is generated once under `--root` (default /tmp/dms-bench-replication) and reused while
its marker file is there; the primary serves a hard-linked copy of it (changed files are replaced,
never written in place). `sync` runs between measurements so that no step pays for another's dirty
pages. The primary's first manifest (hashing everything) is timed apart, as a warm-up.

    .venv/bin/python bench/replication.py [--files 10000] [--mib 1024] [--repeat 1] [--control-plane]
    .venv/bin/python bench/replication.py --files 1000 --mib 100      # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_note, wait_until  # noqa: E402
from tests.support.agents import AgentProcess  # noqa: E402

MIB = 1024 * 1024
SEED = 20261125
TARGET_RATIO = 0.5  # initial sync: at least half of rsync's throughput
TARGET_INCREMENTAL = 0.05  # incremental (1 % changed): at most 5 % of the initial sync's time
POLL_S = 0.02


# -- the data set ----------------------------------------------------------------------------------


def sizes_for(count: int, total: int, seed: int) -> list[int]:
    """Mixed sizes summing to `total`: 90 % small (1-64 KiB), 9 % medium (64 KiB-1 MiB), 1 %
    large (1-16 MiB), log-uniform within each class, then scaled to the total."""
    rng = random.Random(seed)

    def log_uniform(low: float, high: float) -> float:
        return math.exp(rng.uniform(math.log(low), math.log(high)))

    raw = []
    for i in range(count):
        r = i % 100
        if r == 0:
            raw.append(log_uniform(MIB, 16 * MIB))
        elif r < 10:
            raw.append(log_uniform(64 * 1024, MIB))
        else:
            raw.append(log_uniform(1024, 64 * 1024))
    rng.shuffle(raw)
    scale = total / sum(raw)
    sizes = [max(0, int(s * scale)) for s in raw]
    sizes[sizes.index(max(sizes))] += total - sum(sizes)
    return sizes


def rel_path(i: int) -> str:
    return f"d{i % 64:02d}/s{(i // 64) % 8}/f{i:05d}.bin"


def dataset(root: Path, count: int, total: int) -> Path:
    """The data set's directory, generated once (the marker says it is complete)."""
    name = f"dataset-{count}-{total}-{SEED}"
    directory, marker = root / name, root / f"{name}.done"
    if marker.exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    started = time.monotonic()
    for i, size in enumerate(sizes_for(count, total, SEED)):
        path = directory / rel_path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    os.sync()
    marker.write_text(json.dumps({"files": count, "bytes": total, "seed": SEED}))
    print(f"generated {directory} in {time.monotonic() - started:.1f} s", flush=True)
    return directory


def change_files(data_dir: Path, count: int, total: int) -> tuple[int, int]:
    """New contents (same size) for 1 % of the files, each replaced by a rename (so the hard-linked
    data set stays intact). Returns (files, bytes) changed."""
    sizes = sizes_for(count, total, SEED)
    chosen = random.Random(SEED + 1).sample(range(count), max(1, count // 100))
    changed = 0
    for i in chosen:
        path = data_dir / rel_path(i)
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(os.urandom(sizes[i]))
        os.replace(tmp, path)
        changed += sizes[i]
    return len(chosen), changed


# -- measuring -------------------------------------------------------------------------------------


class Pair:
    def __init__(self, primary: AgentProcess, secondary: AgentProcess) -> None:
        self.primary, self.secondary = primary, secondary
        self.seq = 10

    def cpu(self) -> float:
        return cpu_seconds(self.primary.pid) + cpu_seconds(self.secondary.pid)

    def sync(self) -> tuple[float, dict]:
        """POST /v1/sync, poll GET /v1/sync/<id> until it ends: (seconds, final answer); the CPU
        time both agents used is in `self.last_cpu`."""
        cpu = self.cpu()
        self.seq += 1
        body = {
            "source_url": self.primary.heartbeat_url,
            "source_token": self.primary.token,
            "epoch": 1,
            "seq": self.seq,
        }
        started = time.monotonic()
        status, answer = self.secondary.request("POST", "/v1/sync", body)
        if status != 202:
            raise SystemExit(f"POST /v1/sync answered {status}: {answer}")
        sync_id = answer["id"]

        def finished():
            status, answer = self.secondary.request("GET", f"/v1/sync/{sync_id}")
            return status == 200 and answer["state"] != "running" and answer

        answer = wait_until(finished, 3600, POLL_S, f"sync {sync_id}")
        elapsed = time.monotonic() - started
        self.last_cpu = self.cpu() - cpu
        if answer["state"] != "succeeded":
            raise SystemExit(f"sync {sync_id} {answer['state']}: {answer['error']}")
        return elapsed, answer


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rsync(source: Path, target: Path, *extra: str) -> tuple[float, float]:
    """(seconds, CPU seconds of rsync's processes)"""
    cpu = children_cpu()
    started = time.monotonic()
    subprocess.run(["rsync", "-a", *extra, f"{source}/", f"{target}/"], check=True)
    return time.monotonic() - started, children_cpu() - cpu


def settle() -> None:
    """Write back what the previous step left dirty, so the next one starts even."""
    os.sync()
    time.sleep(0.2)


def empty(directory: Path) -> None:
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def same_tree(a: Path, b: Path) -> bool:
    """Same paths and sizes, and the same bytes for a sample (a full compare costs as much as a sync)."""

    def listing(root: Path) -> dict[str, int]:
        found = {}
        for directory, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".dms-")]
            for name in files:
                path = Path(directory, name)
                found[path.relative_to(root).as_posix()] = path.stat().st_size
        return found

    left, right = listing(a), listing(b)
    if left != right:
        return False
    sample = random.Random(1).sample(sorted(left), min(200, len(left)))
    return all((a / rel).read_bytes() == (b / rel).read_bytes() for rel in sample)


def rate(nbytes: int, seconds: float) -> str:
    return f"{seconds:7.2f} s  {nbytes / 1e6 / seconds:7.1f} MB/s"


# -- the control plane's job (optional) -------------------------------------------------------------


def control_plane_incremental(primary: AgentProcess, secondary: AgentProcess, data_dir: Path, count: int, total: int):
    """Change 1 % again and run one job through `cluster.replication.Replication` in this process."""
    from bench._common import prepare

    prepare(flush_redis=False)
    from django.db.models.signals import post_save

    from cluster import signals
    from cluster.models import Cluster, ReplicationJob, Server
    from cluster.replication import Replication
    from cluster.replication_schedule import start_job
    from tests.support.controlplane import server_row

    # No Celery: the agents are configured already.
    post_save.disconnect(signals.configure_a_new_cluster, sender=Cluster)
    name = f"bench-replication-{os.getpid()}"
    servers = [
        server_row(agent, part, name=f"{name}-{agent.name}")
        for agent, part in ((primary, "DMM-SVR-C210-K9"), (secondary, "DMM-FA-C210-K9"))
    ]
    cluster = Cluster.objects.create(name=name, application="dmm", primary=servers[0], secondary=servers[1])
    try:
        Cluster.objects.filter(pk=cluster.pk).update(epoch=1, command_seq=10_000)
        cluster.refresh_from_db()
        files, nbytes = change_files(data_dir, count, total)
        settle()
        job = start_job(cluster, ReplicationJob.Kind.INCREMENTAL)
        started = time.monotonic()
        outcome = Replication(job).run()
        elapsed = time.monotonic() - started
        job.refresh_from_db()
        return outcome, elapsed, files, nbytes, job
    finally:
        Cluster.objects.filter(pk=cluster.pk).delete()
        Server.objects.filter(pk__in=[s.pk for s in servers]).delete()


# -- main -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="number of files (default 10000)")
    parser.add_argument("--mib", type=float, default=1024, help="total size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=1, help="initial syncs (and rsyncs) to time (default 1)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/dms-bench-replication"), help="data set and runs")
    parser.add_argument("--control-plane", action="store_true", help="also one job through the real control plane")
    parser.add_argument("--keep", action="store_true", help="keep this run's directories")
    args = parser.parse_args()
    total = int(args.mib * MIB)
    args.root.mkdir(parents=True, exist_ok=True)
    source = dataset(args.root, args.files, total)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=args.root))
    primary = AgentProcess(run / "p", "bench-p")
    secondary = AgentProcess(run / "s", "bench-s")
    mb = total / 1e6
    print(f"{args.files} files, {mb:.0f} MB (largest {max(sizes_for(args.files, total, SEED)) / 1e6:.1f} MB); "
          f"run directory {run}; {load_note()}", flush=True)  # fmt: skip
    try:
        subprocess.run(["cp", "-al", str(source), str(primary.data_dir)], check=True)
        primary.start_with_fresh_ports()
        secondary.start_with_fresh_ports()
        assert primary.role("primary", 1, 1)[0] == 200
        assert secondary.role("secondary", 1, 1)[0] == 200
        pair = Pair(primary, secondary)

        started = time.monotonic()
        status, _ = primary.request("GET", "/v1/data/manifest", timeout=600)
        assert status == 200
        print(f"primary's first manifest (hashes everything, a warm-up): {time.monotonic() - started:.2f} s")

        print("\ninitial sync (empty target):")
        agent_times, rsync_times = [], []
        rsync_target = run / "rsync-target"
        for attempt in range(args.repeat):
            if attempt:
                empty(secondary.data_dir)
            settle()
            elapsed, answer = pair.sync()
            assert answer["files_total"] == args.files and answer["bytes_done"] == total, answer
            agent_times.append(elapsed)
            print(
                f"  /v1/sync  {rate(total, elapsed)}  {args.files / elapsed:6.0f} files/s  "
                f"CPU {pair.last_cpu:5.2f} s (both agents)",
                flush=True,
            )
            settle()
            shutil.rmtree(rsync_target, ignore_errors=True)
            elapsed, cpu = rsync(primary.data_dir, rsync_target)
            rsync_times.append(elapsed)
            print(
                f"  rsync -a  {rate(total, elapsed)}  {args.files / elapsed:6.0f} files/s  CPU {cpu:5.2f} s", flush=True
            )
        if not same_tree(primary.data_dir, secondary.data_dir):
            raise SystemExit("the secondary's data differs from the primary's")
        settle()
        fsync_target = run / "rsync-fsync-target"
        fsync_s, _ = rsync(primary.data_dir, fsync_target, "--fsync")
        shutil.rmtree(fsync_target)
        print(f"  rsync -a --fsync (reference: rsync fsyncs each file as the agent does)  {rate(total, fsync_s)}")
        best_agent, best_rsync = min(agent_times), min(rsync_times)
        ratio = best_rsync / best_agent
        verdict = "MET" if ratio >= TARGET_RATIO else "MISSED"
        print(
            f"  best: /v1/sync {mb / best_agent:.1f} MB/s, rsync {mb / best_rsync:.1f} MB/s: "
            f"{ratio:.2f}× rsync (target ≥ {TARGET_RATIO}×: {verdict})"
        )

        files, nbytes = change_files(primary.data_dir, args.files, total)
        print(
            f"\nincremental: {files} files changed, {nbytes / 1e6:.1f} MB ({100 * nbytes / total:.1f} % of the bytes):"
        )
        settle()
        inc_s, answer = pair.sync()
        assert answer["files_total"] == files and answer["bytes_done"] == nbytes, answer
        share = inc_s / best_agent
        verdict = "MET" if share <= TARGET_INCREMENTAL else "MISSED"
        print(
            f"  /v1/sync  {rate(nbytes, inc_s)}  CPU {pair.last_cpu:5.2f} s  = {100 * share:.1f} % of the initial "
            f"sync's time "
            f"(target ≤ {100 * TARGET_INCREMENTAL:.0f} %: {verdict})"
        )
        settle()
        rsync_inc_s, _ = rsync(primary.data_dir, rsync_target)
        print(
            f"  rsync -a  {rate(nbytes, rsync_inc_s)}  = {100 * rsync_inc_s / best_rsync:.1f} % of rsync's initial time"
        )
        if not same_tree(primary.data_dir, secondary.data_dir):
            raise SystemExit("the secondary's data differs from the primary's")

        settle()
        noop_s, answer = pair.sync()
        assert answer["files_total"] == 0, answer
        rsync_noop_s, _ = rsync(primary.data_dir, rsync_target)
        print(f"\nnothing changed: /v1/sync {noop_s:.2f} s (CPU {pair.last_cpu:.2f} s), rsync -a {rsync_noop_s:.2f} s")

        if args.control_plane:
            outcome, elapsed, files, nbytes, job = control_plane_incremental(
                primary, secondary, primary.data_dir, args.files, total
            )
            print(
                f"\ncontrol plane (Replication job, polls every 0.5 s): {outcome} in {elapsed:.2f} s for "
                f"{job.files_done} files, {job.bytes_done / 1e6:.1f} MB ({files} files, {nbytes / 1e6:.1f} MB changed)"
            )
        print(f"\n{load_note()}")
    finally:
        secondary.kill()
        primary.kill()
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
