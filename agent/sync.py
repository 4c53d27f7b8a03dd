"""`/v1/sync`: the secondary pulls the primary's data directly (DESIGN §5 Replication, §8).

`POST /v1/sync {source_url, source_token, epoch, seq, quarantine, delete}` starts a background job
on a secondary at its epoch. The job fetches the source's manifest, diffs it with the local one by
sha256, downloads new and changed files (streamed, a few at a time) into the data directory's
hidden temp folder, checks each against the manifest's sha256 (a mismatch is retried, then fails
the job naming the file), fsyncs it and renames it into place. Files under BATCH_FILE_MAX travel
many to a request (`POST /v1/data/batch`), each still verified, fsynced and renamed on its own;
whatever a batch does not deliver intact is fetched again alone. Files the source no longer has are
deleted afterwards (unless `delete` is false). With `quarantine`, every local file that would be
overwritten or deleted is first kept under `<state-dir>/quarantine/<sync-id>/<path>`.

The job aborts at once when the agent stops being secondary at the job's epoch: a watcher cancels
the downloads (even one stuck on a silent source), completed files stay, temp files go, nothing
further is deleted. Jobs live in memory only; a restarted agent answers 404 for old ids, and the
next job (a diff) completes whatever was left. Temp files of a killed run are removed at start.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import ctypes
import hashlib
import itertools
import json
import logging
import os
import shutil
import ssl
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from yarl import URL

from agent.core import AgentCore, BadRequest, Refused, get_int, get_str, require_object
from agent.data import BATCH_FILE_MAX, SHA256_RE, TMP_DIR, DataStore, PathRefused
from agent.storage import fsync_dir
from agent.webutil import ApiError, json_body

log = logging.getLogger("agent.sync")

TMP_PREFIX = "sync-"
QUARANTINE_DIR = "quarantine"
CONCURRENCY = 8
ATTEMPTS = 3  # downloads of one file before the job fails
CHUNK = 1 << 18
BATCH_MIN = 8  # fewer small files than this go one by one (a batch saves nothing)
BATCH_FILES = 256  # files per batch request
BATCH_BYTES = 2 << 20  # bytes per batch request
BATCH_PATH_CHARS = 256 << 10  # characters of paths per batch request (the request body)
STORE_BYTES = BATCH_BYTES  # received bytes written, made durable (one syncfs) and renamed at a time
KEEP_JOBS = 16  # finished jobs answered by GET /v1/sync/<id>
WATCH_S = 0.05  # how often the watcher checks role and epoch
USER_AGENT = "dms-agent-sync/1"
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class Aborted(Exception):
    """The agent's role or epoch changed: stop now."""


class SyncFailed(Exception):
    """The job cannot complete; the message is the job's `error`."""


class Mismatch(Exception):
    """One download did not match the manifest (retried)."""


@dataclass
class SyncJob:
    id: str
    epoch: int
    seq: int
    source_url: str
    source_token: str
    quarantine: bool
    delete: bool
    started_at: float
    state: str = "running"
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    deleted: int = 0
    quarantined: int = 0
    vanished: int = 0
    error: str | None = None
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    dirty_dirs: set[Path] = field(default_factory=set, repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "epoch": self.epoch,
            "seq": self.seq,
            "source_url": self.source_url,
            "quarantine": self.quarantine,
            "delete": self.delete,
            "files_total": self.files_total,
            "files_done": self.files_done,
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "deleted": self.deleted,
            "quarantined": self.quarantined,
            "vanished": self.vanished,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class SyncManager:
    """The sync jobs of one agent (at most one running)."""

    def __init__(
        self,
        core: AgentCore,
        store: DataStore,
        state_dir: Path,
        source_ssl: ssl.SSLContext | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.core = core
        self.store = store
        self.quarantine_root = Path(state_dir) / QUARANTINE_DIR
        self.source_ssl = source_ssl
        self.concurrency = concurrency
        self.jobs: collections.OrderedDict[str, SyncJob] = collections.OrderedDict()
        self.running: SyncJob | None = None
        # The job's disk work (write, fsync, rename) runs in threads of its own, one per download
        # at most: concurrent fsyncs share journal commits, and the default pool stays free.
        self.executor = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="sync")
        self.clean_temp()  # whatever a killed run left behind

    # -- temp files ------------------------------------------------------------------------

    @property
    def tmp_dir(self) -> Path:
        return self.store.root / TMP_DIR

    def clean_temp(self) -> None:
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)

    # -- HTTP -------------------------------------------------------------------------------

    async def handle_post(self, request: web.Request) -> web.Response:
        body = require_object(await json_body(request))
        source_url = get_str(body, "source_url")
        source_token = get_str(body, "source_token")
        assert source_url is not None and source_token is not None
        if not source_url.startswith(("http://", "https://")):
            raise BadRequest("field 'source_url' must be an http:// or https:// URL")
        epoch = get_int(body, "epoch")
        seq = get_int(body, "seq")
        flags = {}
        for key, default in (("quarantine", False), ("delete", True)):
            value = body.get(key, default)
            if value is None:
                value = default
            if not isinstance(value, bool):
                raise BadRequest(f"field {key!r} must be a boolean")
            flags[key] = value
        core = self.core
        core.expire()
        if core.role != "secondary":
            raise Refused(f"sync needs role secondary; the agent is {core.role}", core.status())
        if epoch != core.epoch:
            raise Refused(f"sync names epoch {epoch} but the agent is at epoch {core.epoch}", core.status())
        if self.running is not None:
            raise Refused(f"sync {self.running.id} is running", {**core.status(), "id": self.running.id})
        core.accept_seq(epoch, seq, "sync")
        job = SyncJob(
            id=uuid.uuid4().hex[:16],
            epoch=epoch,
            seq=seq,
            source_url=source_url.rstrip("/"),
            source_token=source_token,
            quarantine=flags["quarantine"],
            delete=flags["delete"],
            started_at=core.wall(),
        )
        self.jobs[job.id] = job
        while len(self.jobs) > KEEP_JOBS:
            self.jobs.popitem(last=False)
        self.running = job
        job.task = asyncio.create_task(self._run(job))
        log.info(
            "%s: sync %s from %s started (epoch %d seq %d%s%s)",
            core.name,
            job.id,
            job.source_url,
            epoch,
            seq,
            ", quarantine" if job.quarantine else "",
            "" if job.delete else ", no deletions",
        )
        return web.json_response({"id": job.id}, status=202)

    async def handle_get(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            raise ApiError(404, "no such sync")
        return web.json_response(job.public())

    async def stop(self) -> None:
        job = self.running
        if job is not None and job.task is not None:
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        self.executor.shutdown(wait=False)

    # -- the job ----------------------------------------------------------------------------

    def _current(self, job: SyncJob) -> bool:
        return self.core.role == "secondary" and self.core.epoch == job.epoch

    def _check(self, job: SyncJob) -> None:
        if not self._current(job):
            raise Aborted()

    async def _run(self, job: SyncJob) -> None:
        work = asyncio.create_task(self._work(job))
        watcher = asyncio.create_task(self._watch(job, work))
        state, error = "failed", None
        try:
            await work
            state = "succeeded"
        except asyncio.CancelledError:
            if not watcher.done() or self._current(job):
                # The agent is shutting down (not an abort): record it and stop.
                state, error = "aborted", "agent stopping"
                raise
            state = "aborted"
        except Aborted:
            state = "aborted"
        except SyncFailed as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # a bug: the job fails, the agent goes on
            log.exception("%s: sync %s crashed", self.core.name, job.id)
            state, error = "failed", f"internal error: {exc}"
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            if state == "aborted" and error is None:
                error = f"aborted: the agent is now {self.core.role} at epoch {self.core.epoch}"
            await self._fsync_dirs(job)
            self.clean_temp()
            # The outcome becomes visible last, complete (finished_at, error, counters).
            job.error, job.finished_at = error, self.core.wall()
            job.state = state
            self.running = None
            log.info(
                "%s: sync %s %s: %d/%d files, %d bytes, %d deleted, %d quarantined%s",
                self.core.name,
                job.id,
                job.state,
                job.files_done,
                job.files_total,
                job.bytes_done,
                job.deleted,
                job.quarantined,
                f" ({job.error})" if job.error else "",
            )

    async def _watch(self, job: SyncJob, work: asyncio.Task[None]) -> None:
        """Cancel the work the moment the agent leaves `secondary` at the job's epoch."""
        while self._current(job):
            await asyncio.sleep(WATCH_S)
        work.cancel()

    async def _work(self, job: SyncJob) -> None:
        self.clean_temp()
        self.tmp_dir.mkdir(exist_ok=True)
        connector = aiohttp.TCPConnector(
            ssl=self.source_ssl if self.source_ssl is not None else True, limit=self.concurrency
        )
        headers = {
            "Authorization": f"Bearer {job.source_token}",
            "User-Agent": USER_AGENT,
            # Never a compressed sibling (FileResponse serves `x.gz` for `x` otherwise).
            "Accept-Encoding": "identity",
        }
        async with aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=TIMEOUT, auto_decompress=False
        ) as session:
            # The local manifest is built while the source's travels.
            local_files = asyncio.ensure_future(asyncio.to_thread(self.store.manifest))
            local_files.add_done_callback(lambda done: done.cancelled() or done.exception())  # never unretrieved
            files = await self._source_manifest(session, job)
            self._check(job)
            local = {f["path"]: f for f in await local_files}
            remote = await asyncio.to_thread(self._check_manifest, files, local)
            self._check(job)
            fetch = [f for f in remote.values() if local.get(f["path"], {}).get("sha256") != f["sha256"]]
            doomed = sorted(set(local) - set(remote)) if job.delete else []
            job.files_total = len(fetch)
            job.bytes_total = sum(f["size"] for f in fetch)
            # Large files first: they set the total time; small ones fill in around them.
            fetch.sort(key=lambda f: -f["size"])
            await self._download_all(session, job, fetch, local)
        for rel in doomed:
            self._check(job)
            self._remove(job, rel)

    async def _source_manifest(self, session: aiohttp.ClientSession, job: SyncJob) -> list[Any]:
        url = job.source_url + "/v1/data/manifest"
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:200]
                    raise SyncFailed(f"source manifest: HTTP {resp.status} {text}")
                document = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SyncFailed(f"source manifest: {type(exc).__name__}: {exc}") from None
        files = document.get("files") if isinstance(document, dict) else None
        if not isinstance(files, list):
            raise SyncFailed("source manifest: no 'files' list")
        return files

    def _check_manifest(self, files: list[Any], local: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The source's entries by path, each checked; a bad one fails the job. A path the local
        manifest lists is a regular file reached through real directories of the data dir (the
        walk follows no symlink), so only the others are resolved (and `_place` resolves every
        path again right before its rename)."""
        remote: dict[str, dict[str, Any]] = {}
        dirs: dict[str, str] = {}  # real paths of directories, for this pass only
        for f in files:
            ok = (
                isinstance(f, dict)
                and isinstance(f.get("path"), str)
                and isinstance(f.get("size"), int)
                and f["size"] >= 0
                and isinstance(f.get("sha256"), str)
                and SHA256_RE.match(f["sha256"])
            )
            if not ok:
                raise SyncFailed(f"source manifest: bad entry {str(f)[:200]}")
            try:
                if f["path"] not in local:
                    self.store.real_path(f["path"], dirs)
            except PathRefused as exc:
                raise SyncFailed(f"source manifest: path {f['path']!r} refused: {exc}") from None
            remote[f["path"]] = f
        return remote

    async def _download_all(
        self, session: aiohttp.ClientSession, job: SyncJob, fetch: list[dict[str, Any]], local: dict[str, Any]
    ) -> None:
        if not fetch:
            return
        queue: collections.deque[Any] = collections.deque(_batches(fetch))

        async def worker() -> None:
            while queue:
                self._check(job)
                item = queue.popleft()
                if isinstance(item, list):
                    await self._fetch_batch(session, job, item, local)
                else:
                    await self._fetch(session, job, item, item["path"] in local)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(queue)))]
        try:
            # The first failure stops the others (their temp files are removed as they go).
            done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        for w in done:
            if w.exception() is not None:
                raise w.exception()  # type: ignore[misc]

    async def _fetch(self, session: aiohttp.ClientSession, job: SyncJob, f: dict[str, Any], existed: bool) -> None:
        rel = f["path"]
        reasons = []
        for attempt in range(1, ATTEMPTS + 1):
            self._check(job)
            try:
                await self._download(session, job, f, existed)
            except Mismatch as exc:
                reasons.append(str(exc))
                log.warning("%s: sync %s: %s (attempt %d of %d)", self.core.name, job.id, exc, attempt, ATTEMPTS)
                continue
            except FileNotFoundError:
                self._vanished(job, f)
                return
            return
        raise SyncFailed(f"file {rel!r} failed {ATTEMPTS} times: {reasons[-1]}")

    async def _fetch_batch(
        self, session: aiohttp.ClientSession, job: SyncJob, files: list[dict[str, Any]], local: dict[str, Any]
    ) -> None:
        """Small files in one request; each is verified and placed on its own, a few per thread
        hop. What the batch does not deliver intact (a sha256 mismatch, a file grown too large,
        a broken answer) goes through `_fetch`, with its retries."""
        url = URL(job.source_url + "/v1/data/batch", encoded=True)
        again: list[dict[str, Any]] = []
        ready: list[tuple[dict[str, Any], bytes]] = []  # received, not yet stored
        done = 0
        try:
            async with session.post(url, json={"paths": [f["path"] for f in files]}) as resp:
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:200]
                    raise Mismatch(f"batch of {len(files)} files: HTTP {resp.status} {text}")
                ready_bytes = 0
                for f in files:
                    self._check(job)
                    header = json.loads(await resp.content.readuntil(b"\n"))
                    if not isinstance(header, dict) or header.get("path") != f["path"]:
                        raise Mismatch(f"batch: expected {f['path']!r}, got {str(header)[:200]}")
                    if header.get("missing"):
                        self._vanished(job, f)
                    elif header.get("too_large"):
                        again.append(f)
                    else:
                        size = header.get("size")
                        if not isinstance(size, int) or not 0 <= size < BATCH_FILE_MAX:
                            raise Mismatch(f"batch: bad entry {str(header)[:200]}")
                        ready.append((f, await resp.content.readexactly(size)))
                        ready_bytes += size
                    done += 1
                    if ready_bytes >= STORE_BYTES:
                        again += await self._store(job, ready, local)
                        ready, ready_bytes = [], 0
                again += await self._store(job, ready, local)
                ready = []
        except (Mismatch, aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            # Fetched again one by one below: what was placed stays, the rest (received but not
            # stored yet included) is retried.
            log.warning("%s: sync %s: batch: %s: %s", self.core.name, job.id, type(exc).__name__, exc)
            again += [f for f, _ in ready] + files[done:]
        for f in again:
            self._check(job)
            await self._fetch(session, job, f, f["path"] in local)

    async def _store(
        self, job: SyncJob, ready: list[tuple[dict[str, Any], bytes]], local: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Verify received files, write them to temp files, make them durable, rename them into
        place: all in one thread hop. Durable = one syncfs of the data dir's filesystem for the
        lot (where there is syncfs) or an fsync each, before any rename, so a crash or power loss
        never shows a renamed file without its data. The files that did not match their sha256
        are returned (to be fetched again)."""
        if not ready:
            return []
        placed: list[dict[str, Any]] = []
        mismatched: list[dict[str, Any]] = []

        def store() -> None:
            written: list[tuple[dict[str, Any], Path]] = []
            try:
                write_all(written)
                if written and _SYNCFS is not None:
                    # Every temp file's data reaches the disk before any of them is renamed: one
                    # write-back of the filesystem instead of one fsync (and journal commit) each.
                    flush_filesystem(self.tmp_dir)
                for f, tmp in written:
                    if not self._current(job):
                        return  # aborted: nothing further is placed
                    self._place(job, tmp, f, f["path"] in local)
                    placed.append(f)
            finally:
                for _, tmp in written[len(placed) :]:
                    tmp.unlink(missing_ok=True)

        def write_all(written: list[tuple[dict[str, Any], Path]]) -> None:
            for f, data in ready:
                if not self._current(job):
                    return  # aborted: nothing further is placed
                digest = hashlib.sha256(data).hexdigest()
                if digest != f["sha256"]:
                    log.warning(
                        "%s: sync %s: file %r: sha256 mismatch in a batch: received %d bytes hashing to %s, "
                        "the manifest says %s (fetched again alone)",
                        self.core.name, job.id, f["path"], len(data), digest, f["sha256"],
                    )  # fmt: skip
                    mismatched.append(f)
                    continue
                written.append((f, _write_temp(self.tmp_dir, job.id, data, fsync=_SYNCFS is None)))

        try:
            await _in_thread(self.executor, store)
        finally:
            # Counted even when an abort arrived meanwhile: these files are in place.
            job.files_done += len(placed)
            job.bytes_done += sum(f["size"] for f in placed)
        return mismatched

    def _vanished(self, job: SyncJob, f: dict[str, Any]) -> None:
        """Gone from the source since its manifest: the next job's diff settles it."""
        job.vanished += 1
        job.bytes_total -= f["size"]
        job.files_total -= 1

    async def _download(self, session: aiohttp.ClientSession, job: SyncJob, f: dict[str, Any], existed: bool) -> None:
        """One attempt: stream into a temp file, hashing; place it only if it matches.

        The disk work (create, write, hash, fsync, rename) runs in threads, a CHUNK at a time,
        so the event loop only moves bytes; at most CHUNK bytes per download are in memory.
        """
        url = URL(job.source_url + "/v1/data/files/" + quote(f["path"]), encoded=True)
        temp = _TempFile(self.tmp_dir, f["path"], f["sha256"])
        buffer = bytearray()
        counted = 0
        placed = False
        try:
            try:
                async with session.get(url) as resp:
                    if resp.status == 404:
                        raise FileNotFoundError(f["path"])
                    if resp.status != 200:
                        text = (await resp.text(errors="replace"))[:200]
                        raise Mismatch(f"file {f['path']!r}: HTTP {resp.status} {text}")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        self._check(job)
                        buffer += chunk
                        counted += len(chunk)
                        job.bytes_done += len(chunk)
                        if len(buffer) >= CHUNK:
                            data = bytes(buffer)
                            buffer.clear()
                            await _in_thread(self.executor, temp.write, data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Mismatch(f"file {f['path']!r}: {type(exc).__name__}: {exc}") from None
            self._check(job)

            def finish() -> None:
                nonlocal placed
                temp.finish(bytes(buffer))  # raises Mismatch
                self._place(job, temp.path, f, existed)
                temp.path = None  # renamed: nothing left to discard
                placed = True

            await _in_thread(self.executor, finish)
        except BaseException:
            if not placed:
                job.bytes_done -= counted
            raise
        finally:
            temp.discard()
            if placed:  # counted even when an abort arrived while the rename ran
                job.files_done += 1

    # -- placing and removing (blocking; run in a thread or between awaits) ----------------

    def _quarantine_path(self, job: SyncJob, rel: str) -> Path:
        return self.quarantine_root / job.id / rel

    def _keep(self, job: SyncJob, source: Path, rel: str, *, move: bool) -> None:
        """Copy (hard link if possible) or move a local file into the job's quarantine."""
        dest = self._quarantine_path(job, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while dest.exists() or dest.is_symlink():  # never overwrite what is already kept
            dest = dest.with_name(f"{Path(rel).name}.{n}")
            n += 1
        if move:
            shutil.move(source, dest)  # a rename on one filesystem, copy + unlink across
        else:
            try:
                os.link(source, dest)
            except OSError:
                shutil.copy2(source, dest)
        job.quarantined += 1
        job.dirty_dirs.add(dest.parent)

    def _clear_way(self, job: SyncJob, target: Path, rel: str) -> bool:
        """Remove what blocks `target`: a file where a parent directory must be, or a directory
        where the file must be (a type change on the source). Their files are local-only, so
        they are deleted (or quarantined) like any file the source no longer has.
        Returns True when every parent directory exists already (one lstat per part: the
        common case costs no more)."""
        parts = rel.split("/")
        path = str(self.store.root)
        for i in range(len(parts) - 1):
            path = os.path.join(path, parts[i])
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return False  # nothing below a missing directory either
            if not stat.S_ISDIR(mode):  # a symlink or a file where a directory must be
                self._discard(job, Path(path), "/".join(parts[: i + 1]))
                return False
        try:
            is_dir = stat.S_ISDIR(os.lstat(target).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_dir = False
        if is_dir:
            for sub in sorted(p for p in target.rglob("*") if not p.is_dir() or p.is_symlink()):
                self._discard(job, sub, sub.relative_to(self.store.root).as_posix())
            shutil.rmtree(target)
        return True

    def _discard(self, job: SyncJob, path: Path, rel: str) -> None:
        if not job.delete and not job.quarantine:
            raise SyncFailed(f"file {rel!r} blocks a path of the source and 'delete' is false")
        if job.quarantine:
            self._keep(job, path, rel, move=True)
        else:
            path.unlink()
        job.deleted += 1
        self.store.forget(rel)

    def _place(self, job: SyncJob, tmp: Path, f: dict[str, Any], existed: bool) -> None:
        rel = f["path"]
        target = self.store.root.joinpath(*rel.split("/"))
        if not self._clear_way(job, target, rel):
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.store.resolve(rel)  # nothing made meanwhile may lead outside the data dir
        except PathRefused as exc:
            raise SyncFailed(f"file {rel!r} refused: {exc}") from None
        if job.quarantine and existed and target.exists():
            self._keep(job, target, rel, move=False)
        os.replace(tmp, target)
        job.dirty_dirs.add(target.parent)
        self.store.remember(rel, target, f["sha256"])

    def _remove(self, job: SyncJob, rel: str) -> None:
        target = self.store.root.joinpath(*rel.split("/"))
        try:
            self.store.resolve(rel)
        except PathRefused:
            return
        if not (target.is_symlink() or target.is_file()):
            return  # gone meanwhile, or already cleared away for a directory of the source
        if job.quarantine:
            self._keep(job, target, rel, move=True)
        else:
            target.unlink()
        job.deleted += 1
        self.store.forget(rel)
        # Prune directories the deletion left empty (never the data dir itself).
        parent = target.parent
        while parent != self.store.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        job.dirty_dirs.add(parent)

    async def _fsync_dirs(self, job: SyncJob) -> None:
        """Make the job's renames durable, never once per file: one syncfs per filesystem touched
        (the data dir's, the quarantine's) where there is syncfs, else one fsync per directory,
        several at a time (concurrent fsyncs share journal commits)."""

        def one(directory: Path) -> None:
            try:
                fsync_dir(directory)
            except OSError:
                pass

        def per_filesystem(directories: set[Path]) -> None:
            devices: dict[int, Path] = {}
            for directory in directories:
                try:
                    devices.setdefault(os.stat(directory).st_dev, directory)
                except OSError:
                    pass
            for directory in devices.values():
                try:
                    flush_filesystem(directory)
                except OSError:
                    pass

        loop = asyncio.get_running_loop()
        dirs, job.dirty_dirs = job.dirty_dirs, set()
        if _SYNCFS is not None:
            await loop.run_in_executor(self.executor, per_filesystem, dirs)
        else:
            await asyncio.gather(*(loop.run_in_executor(self.executor, one, d) for d in dirs))


class _TempFile:
    """A download's temp file in the data dir's hidden folder, created on the first write."""

    def __init__(self, directory: Path, rel: str, sha256: str) -> None:
        self.directory = directory
        self.rel = rel
        self.expected = sha256
        self.path: Path | None = None
        self.file: Any = None
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if self.file is None:
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=TMP_PREFIX)
            self.path = Path(name)
            self.file = os.fdopen(fd, "wb")
        self.hash.update(data)
        self.file.write(data)
        self.size += len(data)

    def finish(self, rest: bytes) -> None:
        """Write the rest, check the sha256, fsync and close; `path` is then ready to rename."""
        self.write(rest)
        digest = self.hash.hexdigest()
        if digest != self.expected:
            raise Mismatch(
                f"file {self.rel!r}: sha256 mismatch: received {self.size} bytes "
                f"hashing to {digest}, the manifest says {self.expected}"
            )
        self.file.flush()
        os.fsync(self.file.fileno())
        os.fchmod(self.file.fileno(), 0o644)
        self.file.close()

    def discard(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)  # gone already once renamed into place


_temp_names = itertools.count()


def _write_temp(directory: Path, job_id: str, data: bytes, *, fsync: bool) -> Path:
    """A whole file (its sha256 checked already) in a new temp file, fsynced if `fsync`. Named by
    the job and a counter (cheaper than mkstemp's random names; O_EXCL all the same)."""
    name = os.path.join(directory, f"{TMP_PREFIX}{job_id}-{next(_temp_names)}")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
        os.fchmod(fd, 0o644)  # whatever the umask
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def _load_syncfs() -> Any:
    """Linux's syncfs(2) (write back one filesystem), or None where there is none."""
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_SYNCFS = _load_syncfs()


def flush_filesystem(directory: Path) -> None:
    """Write back every dirty page and inode of the filesystem holding `directory` and wait for
    it; OSError on a write-back error (syncfs reports those since Linux 5.8)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")
    finally:
        os.close(fd)


async def _in_thread(executor: concurrent.futures.Executor, func: Any, *args: Any) -> Any:
    """Run blocking `func` in a thread; if the caller is cancelled meanwhile, wait for the
    thread before the cancellation goes on (so no file is touched after its cleanup)."""
    future = asyncio.get_running_loop().run_in_executor(executor, func, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.gather(future, return_exceptions=True)
        raise


def _batches(fetch: list[dict[str, Any]]) -> list[Any]:
    """The work items: large files one by one (largest first: they set the total time), then the
    small ones in batches (or one by one when there are only a few)."""
    large = [f for f in fetch if f["size"] >= BATCH_FILE_MAX]
    small = [f for f in fetch if f["size"] < BATCH_FILE_MAX]
    if len(small) < BATCH_MIN:
        return large + small
    items: list[Any] = list(large)
    batch: list[dict[str, Any]] = []
    size = chars = 0
    for f in small:
        if batch and (len(batch) >= BATCH_FILES or size + f["size"] > BATCH_BYTES or chars > BATCH_PATH_CHARS):
            items.append(batch)
            batch, size, chars = [], 0, 0
        batch.append(f)
        size += f["size"]
        chars += len(f["path"])
    items.append(batch)
    return items


def add_routes(app: web.Application, manager: SyncManager) -> None:
    app.router.add_post("/v1/sync", manager.handle_post)
    app.router.add_get("/v1/sync/{id}", manager.handle_get)
