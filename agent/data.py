"""The data directory over HTTP: manifest and streamed file transfer (DESIGN §8).

Files are streamed both ways (never a whole file in memory; `POST /v1/data/batch` sends many small
files, each under BATCH_FILE_MAX, in one answer so that replication does not pay an HTTP exchange
per small file). A PUT is written to a temp file in a
hidden directory inside the data directory, checked against `X-Sha256`, fsynced and renamed, so a
reader sees the old file or the new one, never half of it. PUT and DELETE need only the control
token (a peer credential may read, never write: agent/credentials.py):
ordering by (epoch, seq) belongs to the sync job that calls them (`/v1/sync`, a later module).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.core import BadRequest, require_object
from agent.storage import fsync_dir
from agent.webutil import ApiError, json_body

log = logging.getLogger("agent.data")

INTERNAL_PREFIX = ".dms-"  # hidden directories of the agent itself (temp files, quarantine)
TMP_DIR = ".dms-tmp"
CHUNK = 1 << 16
GET_CHUNK = 1 << 18  # bytes per read of a GET (one thread hop each)
BATCH_FILE_MAX = 1 << 20  # files of a batch are smaller than this (larger ones: one GET each)
BATCH_MAX_PATHS = 1000  # paths per batch request
BATCH_READ = 1 << 20  # a batch reads about this many bytes per thread hop
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class PathRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DataStore:
    """One data directory; `max_body` bytes is the largest file a PUT may carry."""

    def __init__(self, root: Path, max_body: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.real_root = os.path.realpath(root)
        self.max_body = max_body
        # path -> (size, mtime_ns, sha256): re-hash only files that changed.
        self._sha_cache: dict[str, tuple[int, int, str]] = {}
        self._cache_lock = threading.Lock()  # the manifest runs in a thread, PUT/DELETE do not

    # -- paths ------------------------------------------------------------------------------

    def resolve(self, rel: str) -> Path:
        """Map a relative URL path to a file inside the data directory, or raise PathRefused.

        Refused: empty, absolute, `..`/`.`/empty segments, backslashes, NUL (400); the agent's
        own hidden directories and anything whose real path leaves the data dir (403).
        """
        parts = _parts(rel)
        target = self.root.joinpath(*parts)
        if not os.path.realpath(target).startswith(self.real_root + os.sep):
            raise PathRefused(403, "path leaves the data directory")
        return target

    def real_path(self, rel: str, dirs: dict[str, str]) -> str:
        """`resolve()` for one pass over many paths: the same refusals, but the real path (a
        str) is returned, and `dirs` (a dict the caller keeps for this pass only, never across
        time) caches the real paths of parent directories, so that each path costs one lstat
        (of its last name) instead of one per part."""
        parts = _parts(rel)
        parent = rel.rpartition("/")[0]
        real_parent = dirs.get(parent)
        if real_parent is None:
            real_parent = os.path.realpath(os.path.join(self.root, *parts[:-1])) if parent else self.real_root
            dirs[parent] = real_parent
        real = real_parent + os.sep + parts[-1]
        if os.path.islink(real):
            real = os.path.realpath(real)
        if not real.startswith(self.real_root + os.sep):
            raise PathRefused(403, "path leaves the data directory")
        return real

    # -- manifest ---------------------------------------------------------------------------

    def manifest(self) -> list[dict[str, Any]]:
        """Every regular file (symlinks and the agent's hidden dirs skipped), sorted by path.

        Blocking: run it in a thread so heartbeats are answered meanwhile.
        """
        files: list[dict[str, Any]] = []
        seen: set[str] = set()
        stack = [("", self.root)]
        while stack:
            prefix, directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                rel = prefix + entry.name
                if not prefix and entry.name.startswith(INTERNAL_PREFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.append({"path": rel, "size": st.st_size, "sha256": self._sha256(rel, entry.path, st)})
                    seen.add(rel)
        with self._cache_lock:
            for gone in set(self._sha_cache) - seen:
                self._sha_cache.pop(gone, None)
        files.sort(key=lambda f: f["path"])
        return files

    def _sha256(self, rel: str, path: str, st: os.stat_result) -> str:
        with self._cache_lock:
            cached = self._sha_cache.get(rel)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
        with self._cache_lock:
            self._sha_cache[rel] = (st.st_size, st.st_mtime_ns, digest)
        return digest

    def remember(self, rel: str, path: Path, sha256: str) -> None:
        """Record the sha256 of a file just written (so the next manifest need not re-hash it)."""
        st = path.stat()
        with self._cache_lock:
            self._sha_cache[rel] = (st.st_size, st.st_mtime_ns, sha256)

    def forget(self, rel: str) -> None:
        with self._cache_lock:
            self._sha_cache.pop(rel, None)

    # -- handlers ---------------------------------------------------------------------------

    async def handle_manifest(self, request: web.Request) -> web.Response:
        files = await asyncio.to_thread(self.manifest)
        return web.json_response({"files": files})

    async def handle_get(self, request: web.Request) -> web.StreamResponse:
        """The file's exact bytes (never a compressed sibling, no ranges), read in a thread: the
        first read comes with the open, so a small file costs one thread hop."""
        target = self._target(request)
        opened = await asyncio.to_thread(_open_regular, target, GET_CHUNK)
        if opened is None:
            raise ApiError(404, "no such file")
        f, size, first = opened
        try:
            response = web.StreamResponse(
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            )
            await response.prepare(request)
            sent = len(first)
            await response.write(first)
            while sent < size:
                chunk = await asyncio.to_thread(f.read, min(GET_CHUNK, size - sent))
                if not chunk:
                    break  # shrunk meanwhile: the client sees a short body and retries
                sent += len(chunk)
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            f.close()

    async def handle_batch(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/data/batch {paths}`: many small files in one streamed answer.

        For each path, in order: a JSON line `{"path", "size"}` followed by exactly `size` bytes;
        `{"path", "missing": true}` when it is not a regular file; `{"path", "too_large": true}`
        when it is BATCH_FILE_MAX bytes or more (fetch it with GET). A refused path refuses the
        whole request (400/403), like GET.
        """
        body = require_object(await json_body(request))
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise BadRequest("field 'paths' must be a list of strings")
        if len(paths) > BATCH_MAX_PATHS:
            raise BadRequest(f"at most {BATCH_MAX_PATHS} paths per batch")
        dirs: dict[str, str] = {}
        try:
            targets = await asyncio.to_thread(lambda: [self.real_path(rel, dirs) for rel in paths])
        except PathRefused as exc:
            raise ApiError(exc.status, str(exc))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        start = 0
        while start < len(targets):
            data, start = await asyncio.to_thread(_read_batch, paths, targets, start)
            await response.write(data)
        await response.write_eof()
        return response

    async def handle_delete(self, request: web.Request) -> web.Response:
        target = self._target(request)
        rel = request.match_info["path"]
        try:
            if target.is_dir() and not target.is_symlink():
                raise ApiError(400, "path is a directory")
            target.unlink()
        except FileNotFoundError:
            raise ApiError(404, "no such file")
        with self._cache_lock:
            self._sha_cache.pop(rel, None)
        await asyncio.to_thread(fsync_dir, target.parent)
        return web.json_response({"deleted": rel})

    async def handle_put(self, request: web.Request) -> web.Response:
        target = self._target(request)
        rel = request.match_info["path"]
        expected = request.headers.get("X-Sha256", "").strip().lower()
        if not SHA256_RE.match(expected):
            raise ApiError(400, "header X-Sha256 with the file's hex sha256 is required")
        if request.content_length is not None and request.content_length > self.max_body:
            raise ApiError(413, f"body of {request.content_length} bytes exceeds the limit of {self.max_body} bytes")
        if target.is_dir() and not target.is_symlink():
            raise ApiError(400, "path is a directory")
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                h = hashlib.sha256()
                size = 0
                async for chunk in request.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > self.max_body:
                        raise ApiError(413, f"body exceeds the limit of {self.max_body} bytes")
                    h.update(chunk)
                    f.write(chunk)
                if h.hexdigest() != expected:
                    raise ApiError(400, f"sha256 mismatch: body is {h.hexdigest()}, X-Sha256 says {expected}")
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            self.resolve(rel)  # a directory made since the first check must not escape either
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            await asyncio.to_thread(fsync_dir, target.parent)
        except PathRefused as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(exc.status, str(exc))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        st = target.stat()
        with self._cache_lock:
            self._sha_cache[rel] = (st.st_size, st.st_mtime_ns, expected)
        return web.json_response({"path": rel, "size": size, "sha256": expected}, status=201)

    def _target(self, request: web.Request) -> Path:
        try:
            return self.resolve(request.match_info["path"])
        except PathRefused as exc:
            raise ApiError(exc.status, str(exc))


def _parts(rel: str) -> list[str]:
    """The segments of a relative path, or PathRefused (400, or 403 for the agent's own)."""
    if not rel or "\x00" in rel or "\\" in rel:
        raise PathRefused(400, "invalid path")
    if rel.startswith("/"):
        raise PathRefused(400, "absolute paths are refused")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PathRefused(400, "path segments '', '.' and '..' are refused")
    if parts[0].startswith(INTERNAL_PREFIX):
        raise PathRefused(403, "path is reserved for the agent")
    return parts


def _open_regular(path: Path | str, first: int) -> tuple[Any, int, bytes] | None:
    """(open file, size, its first bytes), or None unless `path` is a regular file."""
    try:
        f = open(path, "rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            return None
        return f, st.st_size, f.read(min(first, st.st_size))
    except BaseException:
        f.close()
        raise


def _read_batch(paths: list[str], targets: list[str], start: int) -> tuple[bytes, int]:
    """The batch's entries from `start` on, about BATCH_READ bytes of them; (bytes, next start)."""
    parts: list[bytes] = []
    total = 0
    i = start
    while i < len(targets) and total < BATCH_READ:
        rel = paths[i]
        i += 1
        opened = _open_regular(targets[i - 1], BATCH_FILE_MAX)
        if opened is None:
            header: dict[str, Any] = {"path": rel, "missing": True}
            data = b""
        else:
            f, size, data = opened
            try:
                if size >= BATCH_FILE_MAX or f.read(1):  # a file that grew past the limit meanwhile
                    header, data = {"path": rel, "too_large": True}, b""
                else:
                    header = {"path": rel, "size": len(data)}
            finally:
                f.close()
        parts.append(json.dumps(header).encode() + b"\n")
        parts.append(data)
        total += len(data)
    return b"".join(parts), i


def add_routes(app: web.Application, store: DataStore) -> None:
    app.router.add_get("/v1/data/manifest", store.handle_manifest)
    app.router.add_post("/v1/data/batch", store.handle_batch)
    app.router.add_get("/v1/data/files/{path:.+}", store.handle_get)
    app.router.add_put("/v1/data/files/{path:.+}", store.handle_put)
    app.router.add_delete("/v1/data/files/{path:.+}", store.handle_delete)
