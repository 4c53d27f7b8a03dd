"""A TCP relay whose link black-holes new connections until it is opened, without root.

Its listening socket has an accept queue of one, filled by a connection nobody accepts, so the
kernel drops every SYN that arrives: a client's `connect()` hangs as on a cut link, and the
kernel retransmits the SYN after 1 s, 3 s, ... `open()` drains the queue and relays from then on,
so the next retransmitted SYN connects: a link that recovered while the client was connecting.
"""

from __future__ import annotations

import socket
import threading


class SynDropRelay:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.listener = socket.create_server((host, 0), backlog=0)
        self.port = self.listener.getsockname()[1]
        self._filler = socket.create_connection((host, self.port))
        self._sockets: list[socket.socket] = [self._filler]
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def open(self) -> None:
        """From now on accept and relay: the next (retransmitted) SYN gets through."""
        threading.Thread(target=self._accept, daemon=True, name=f"syn-drop-{self.port}").start()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        filler, _ = self.listener.accept()
        filler.close()
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection((self.host, self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
