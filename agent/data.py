"""The data directory over HTTP: manifest and streamed file transfer (DESIGN §8).

Files are streamed both ways (never a whole file in memory). A PUT is written to a temp file in a
hidden directory inside the data directory, checked against `X-Sha256`, fsynced and renamed, so a
reader sees the old file or the new one, never half of it. PUT and DELETE need only the token:
ordering by (epoch, seq) belongs to the sync job that calls them (`/v1/sync`, a later module).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.storage import fsync_dir
from agent.webutil import ApiError

log = logging.getLogger("agent.data")

INTERNAL_PREFIX = ".dms-"  # hidden directories of the agent itself (temp files, quarantine)
TMP_DIR = ".dms-tmp"
CHUNK = 1 << 16
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
        if not rel or "\x00" in rel or "\\" in rel:
            raise PathRefused(400, "invalid path")
        if rel.startswith("/"):
            raise PathRefused(400, "absolute paths are refused")
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise PathRefused(400, "path segments '', '.' and '..' are refused")
        if parts[0].startswith(INTERNAL_PREFIX):
            raise PathRefused(403, "path is reserved for the agent")
        target = self.root.joinpath(*parts)
        real = os.path.realpath(target)
        if not real.startswith(self.real_root + os.sep):
            raise PathRefused(403, "path leaves the data directory")
        return target

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
                    files.append({"path": rel, "size": st.st_size,
                                  "sha256": self._sha256(rel, entry.path, st)})
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
        target = self._target(request)
        try:
            st = target.stat()
        except FileNotFoundError:
            raise ApiError(404, "no such file")
        if not stat.S_ISREG(st.st_mode):
            raise ApiError(404, "not a regular file")
        return web.FileResponse(target, chunk_size=CHUNK)

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
            raise ApiError(413, f"body of {request.content_length} bytes exceeds the limit of "
                         f"{self.max_body} bytes")
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
                    raise ApiError(400, f"sha256 mismatch: body is {h.hexdigest()}, "
                                 f"X-Sha256 says {expected}")
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


def add_routes(app: web.Application, store: DataStore) -> None:
    app.router.add_get("/v1/data/manifest", store.handle_manifest)
    app.router.add_get("/v1/data/files/{path:.+}", store.handle_get)
    app.router.add_put("/v1/data/files/{path:.+}", store.handle_put)
    app.router.add_delete("/v1/data/files/{path:.+}", store.handle_delete)
