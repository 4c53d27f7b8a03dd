"""`POST /v1/data/batch` (many small files in one streamed answer), the exact-file GET, and the sync
paths that use them: batches verified per file, a mismatch fetched again alone, refused paths."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from aiohttp import web

from agent.data import BATCH_FILE_MAX, BATCH_MAX_PATHS
from tests.agent.sync_pair import Pair, temp_files, tree, write
from tests.support.agents import free_port

pytestmark = pytest.mark.integration


def frames(raw: bytes) -> list[tuple[dict, bytes]]:
    """Split a batch answer into (header, body) pairs."""
    found, i = [], 0
    while i < len(raw):
        end = raw.index(b"\n", i)
        header = json.loads(raw[i:end])
        size = header.get("size", 0)
        found.append((header, raw[end + 1 : end + 1 + size]))
        i = end + 1 + size
    return found


@pytest.fixture
def agent(agent_factory):
    return agent_factory("b")


def test_a_batch_answers_each_path_in_order(agent) -> None:
    root = agent.data_dir
    write(root, "a.txt", b"alpha")
    write(root, "nested/deep/b.bin", b"\n" * 1000)  # newlines in the data do not break the framing
    write(root, "empty", b"")
    write(root, "big.bin", os.urandom(BATCH_FILE_MAX))
    (root / "dir").mkdir()
    paths = ["nested/deep/b.bin", "gone.txt", "a.txt", "big.bin", "empty", "dir", "a.txt"]
    status, raw = agent.request("POST", "/v1/data/batch", {"paths": paths})
    assert status == 200, raw
    assert frames(raw) == [
        ({"path": "nested/deep/b.bin", "size": 1000}, b"\n" * 1000),
        ({"path": "gone.txt", "missing": True}, b""),
        ({"path": "a.txt", "size": 5}, b"alpha"),
        ({"path": "big.bin", "too_large": True}, b""),  # one GET each for those
        ({"path": "empty", "size": 0}, b""),
        ({"path": "dir", "missing": True}, b""),
        ({"path": "a.txt", "size": 5}, b"alpha"),
    ]
    assert agent.request("POST", "/v1/data/batch", {"paths": []}) == (200, b"")


def test_a_batch_refuses_bad_requests_and_paths(agent, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, agent.data_dir / "link")
    os.symlink(outside / "secret.txt", agent.data_dir / "file-link")
    write(agent.data_dir, "a.txt", b"a")
    for paths, status in (
        (["a.txt", "../escape"], 400),
        (["/etc/passwd"], 400),
        (["a//b"], 400),
        ([".dms-tmp/x"], 403),
        (["a.txt", "link/secret.txt"], 403),
        (["file-link"], 403),
    ):
        answer = agent.request("POST", "/v1/data/batch", {"paths": paths})
        assert answer[0] == status and "error" in answer[1], (paths, answer)
    for body in ({}, {"paths": "a.txt"}, {"paths": [1]}, {"paths": ["a.txt"] * (BATCH_MAX_PATHS + 1)}):
        assert agent.request("POST", "/v1/data/batch", body)[0] == 400, body
    assert agent.request("POST", "/v1/data/batch", {"paths": ["a.txt"]}, token="wrong")[0] == 401


def test_get_serves_the_exact_file_never_a_compressed_sibling(agent) -> None:
    write(agent.data_dir, "page.html", b"<p>plain</p>")
    write(agent.data_dir, "page.html.gz", b"not the file")
    write(agent.data_dir, "page.html.br", b"not the file either")
    for encoding in ("gzip", "br", "gzip, br", "identity"):
        status, body = agent.request("GET", "/v1/data/files/page.html", headers={"Accept-Encoding": encoding})
        assert (status, body) == (200, b"<p>plain</p>"), encoding
    big = os.urandom(3 * 256 * 1024 + 17)  # several reads
    write(agent.data_dir, "big.bin", big)
    assert agent.request("GET", "/v1/data/files/big.bin") == (200, big)
    assert agent.request("GET", "/v1/data/files/page.html.gz")[1] == b"not the file"


def test_many_small_files_travel_in_batches_and_arrive_verified(pair: Pair) -> None:
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    for i in range(600):  # more than one batch (at most 256 files each)
        write(p, f"d{i % 7}/f{i}.bin", os.urandom(i * 37 % 5000))
    write(p, "large.bin", os.urandom(BATCH_FILE_MAX + 1))
    write(s, "d1/f1.bin", b"an old version")
    answer = pair.sync()
    assert tree(s) == tree(p)
    assert answer["files_done"] == answer["files_total"] == 601
    assert answer["bytes_done"] == answer["bytes_total"] == sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    assert temp_files(pair.secondary) == []
    assert oct((s / "d3/f3.bin").stat().st_mode & 0o777) == "0o644"


def test_a_file_changed_behind_the_manifest_fails_alone_naming_it(pair: Pair) -> None:
    """The primary's manifest caches sha256 by size and mtime: new bytes of the same size with the
    old mtime make it announce a stale sha256, so the batch's copy mismatches, and so does every
    retry alone. The job fails naming that file; the rest of its batch is in place."""
    p, s = pair.primary.data_dir, pair.secondary.data_dir
    for i in range(20):
        write(p, f"f{i:02d}.txt", f"file {i:02d}".encode())
    assert pair.primary.request("GET", "/v1/data/manifest")[0] == 200  # cached now
    victim = p / "f07.txt"
    st = victim.stat()
    victim.write_bytes(b"FILE 07")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    answer = pair.wait(pair.start())
    assert answer["state"] == "failed", answer
    assert "f07.txt" in answer["error"] and "sha256 mismatch" in answer["error"]
    assert "in a batch" in pair.secondary.log_text()
    assert not (s / "f07.txt").exists()
    expected = {f"f{i:02d}.txt": hashlib.sha256(f"file {i:02d}".encode()).hexdigest() for i in range(20) if i != 7}
    assert tree(s) == expected
    assert answer["files_done"] == 19 and temp_files(pair.secondary) == []


class BrokenBatchSource:
    """A sync source whose batch answer breaks after `good` entries (a header for the wrong path):
    the files received before the break must still arrive, in place or fetched again alone."""

    def __init__(self, files: dict[str, bytes], good: int) -> None:
        self.files, self.good = files, good
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BrokenBatchSource:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v1/data/manifest", self._manifest)
        app.router.add_post("/v1/data/batch", self._batch)
        app.router.add_get("/v1/data/files/{path:.+}", self._file)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(runner.cleanup())

    async def _manifest(self, request: web.Request) -> web.Response:
        files = [
            {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for rel, data in self.files.items()
        ]
        return web.json_response({"files": files})

    async def _batch(self, request: web.Request) -> web.Response:
        paths = (await request.json())["paths"]
        body = b"".join(
            json.dumps({"path": rel, "size": len(self.files[rel])}).encode() + b"\n" + self.files[rel]
            for rel in paths[: self.good]
        )
        body += json.dumps({"path": "not-what-was-asked", "size": 0}).encode() + b"\n"
        return web.Response(body=body, content_type="application/octet-stream")

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=self.files[request.match_info["path"]], content_type="application/octet-stream")


def test_files_received_before_a_batch_breaks_still_arrive(pair: Pair) -> None:
    files = {f"f{i:02d}.txt": f"file {i:02d}".encode() for i in range(20)}
    with BrokenBatchSource(files, good=5) as source:
        answer = pair.sync(source.url)
    assert "batch: Mismatch" in pair.secondary.log_text()
    assert tree(pair.secondary.data_dir) == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    assert answer["files_done"] == answer["files_total"] == 20
    assert temp_files(pair.secondary) == []


def test_a_source_path_through_a_local_symlink_is_refused(pair: Pair, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, pair.secondary.data_dir / "link")
    for i in range(10):
        write(pair.primary.data_dir, f"link/f{i}.txt", b"x")
    answer = pair.wait(pair.start())
    assert answer["state"] == "failed" and "refused" in answer["error"], answer
    assert list(outside.iterdir()) == []


def test_temp_files_are_written_whole_and_never_clobber(tmp_path: Path) -> None:
    from agent import sync

    first = sync._write_temp(tmp_path, "job", b"data", fsync=True)
    second = sync._write_temp(tmp_path, "job", b"", fsync=False)
    assert first != second and first.read_bytes() == b"data" and second.read_bytes() == b""
    assert first.name.startswith(sync.TMP_PREFIX) and oct(first.stat().st_mode & 0o777) == "0o644"
    if sync._SYNCFS is not None:
        sync.flush_filesystem(tmp_path)  # no error on a healthy filesystem
