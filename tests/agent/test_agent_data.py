"""Data files over HTTP (DESIGN §8): manifest, streamed atomic PUT, and every refused path."""

from __future__ import annotations

import hashlib
import http.client
import os

import pytest

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(agent, path: str, data: bytes, digest: str | None = None):
    return agent.request("PUT", "/v1/data/files/" + path, raw=data, headers={"X-Sha256": digest or sha(data)})


def leftovers(agent) -> list[str]:
    """Every file under the data dir, hidden temp files included."""
    found = []
    for root, _, files in os.walk(agent.data_dir):
        found += [os.path.relpath(os.path.join(root, f), agent.data_dir) for f in files]
    return sorted(found)


@pytest.fixture
def agent(agent_factory):
    return agent_factory("d", max_body_mb=1)


def test_put_get_delete_and_manifest(agent) -> None:
    assert agent.request("GET", "/v1/data/manifest") == (200, {"files": []})
    assert put(agent, "a.txt", b"hello")[0] == 201
    status, body = put(agent, "dir/sub/b.bin", b"\x00" * 1000)
    assert status == 201 and body["size"] == 1000
    status, data = agent.request("GET", "/v1/data/files/dir/sub/b.bin")
    assert status == 200 and data == b"\x00" * 1000
    (agent.data_dir / "outside-writer.txt").write_bytes(b"xyz")  # files not put through us
    status, manifest = agent.request("GET", "/v1/data/manifest")
    assert manifest["files"] == [
        {"path": "a.txt", "size": 5, "sha256": sha(b"hello")},
        {"path": "dir/sub/b.bin", "size": 1000, "sha256": sha(b"\x00" * 1000)},
        {"path": "outside-writer.txt", "size": 3, "sha256": sha(b"xyz")},
    ]
    assert put(agent, "a.txt", b"changed")[0] == 201
    (agent.data_dir / "outside-writer.txt").write_bytes(b"longer")
    files = {f["path"]: f for f in agent.request("GET", "/v1/data/manifest")[1]["files"]}
    assert files["a.txt"]["sha256"] == sha(b"changed")
    assert files["outside-writer.txt"]["sha256"] == sha(b"longer")
    assert agent.request("DELETE", "/v1/data/files/a.txt")[0] == 200
    assert agent.request("GET", "/v1/data/files/a.txt")[0] == 404
    assert agent.request("DELETE", "/v1/data/files/a.txt")[0] == 404
    assert "a.txt" not in {f["path"] for f in agent.request("GET", "/v1/data/manifest")[1]["files"]}


def test_a_sha_mismatch_is_refused_and_leaves_nothing(agent) -> None:
    status, body = put(agent, "x.txt", b"payload", digest=sha(b"other"))
    assert status == 400 and "sha256 mismatch" in body["error"]
    status, body = agent.request("PUT", "/v1/data/files/x.txt", raw=b"payload")
    assert status == 400 and "X-Sha256" in body["error"]
    assert leftovers(agent) == []
    put(agent, "keep.txt", b"old")
    assert put(agent, "keep.txt", b"new", digest=sha(b"wrong"))[0] == 400
    assert agent.request("GET", "/v1/data/files/keep.txt")[1] == b"old"  # old file untouched
    assert leftovers(agent) == ["keep.txt"]


def test_an_oversized_body_is_refused_and_leaves_nothing(agent) -> None:
    big = b"x" * (1024 * 1024 + 1)
    status, body = put(agent, "big.bin", big)
    assert status == 413
    assert leftovers(agent) == []
    # Without Content-Length (chunked) the limit is enforced while streaming.
    conn = http.client.HTTPConnection("127.0.0.1", agent.heartbeat_port, timeout=10)
    try:
        conn.putrequest("PUT", "/v1/data/files/big2.bin")
        conn.putheader("Authorization", f"Bearer {agent.token}")
        conn.putheader("X-Sha256", sha(big))
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for i in range(0, len(big), 65536):
                chunk = big[i : i + 65536]
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent may answer and close before we finish sending
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert leftovers(agent) == []


@pytest.mark.parametrize(
    "path,status",
    [
        ("%2e%2e/escape.txt", 400),
        ("a/%2e%2e/%2e%2e/escape.txt", 400),
        ("%2Fetc%2Fpasswd", 400),
        ("a//b", 400),
        ("./a", 400),
        (".dms-tmp/x", 403),
    ],
)
def test_paths_outside_the_data_dir_are_refused(agent, path: str, status: int) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer_status, body = agent.request(method, "/v1/data/files/" + path, raw=b"x", headers={"X-Sha256": sha(b"x")})
        assert answer_status == status, (method, path, body)
    assert not (agent.base_dir / "escape.txt").exists()
    assert leftovers(agent) == []


def test_a_raw_dotdot_path_never_reaches_a_file(agent) -> None:
    (agent.base_dir / "secret.txt").write_text("secret")
    status, body = agent.request("GET", "/v1/data/files/../../secret.txt")
    assert status in (400, 403, 404) and body != b"secret"


def test_symlink_escapes_are_refused(agent, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, agent.data_dir / "link")
    os.symlink(outside / "secret.txt", agent.data_dir / "file-link")
    assert agent.request("GET", "/v1/data/files/link/secret.txt")[0] == 403
    assert agent.request("GET", "/v1/data/files/file-link")[0] == 403
    assert put(agent, "link/new.txt", b"x")[0] == 403
    assert put(agent, "file-link", b"x")[0] == 403
    assert agent.request("DELETE", "/v1/data/files/link/secret.txt")[0] == 403
    assert not (outside / "new.txt").exists()
    assert (outside / "secret.txt").read_text() == "secret"
    # Symlinks are not data: the manifest lists neither link nor what it points to.
    assert agent.request("GET", "/v1/data/manifest")[1]["files"] == []


def test_manifest_of_many_files_is_cached(agent) -> None:
    import time

    for i in range(2000):
        d = agent.data_dir / f"d{i % 20}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(b"%d" % i)
    started = time.monotonic()
    files = agent.request("GET", "/v1/data/manifest", timeout=30)[1]["files"]
    first = time.monotonic() - started
    assert len(files) == 2000
    started = time.monotonic()
    agent.request("GET", "/v1/data/manifest", timeout=30)
    second = time.monotonic() - started
    assert second < 1.0 and second <= first * 1.5
