"""A server on the host, reachable from the Pods of a kind node container: a port on the node's
address, inside the node's network namespace, whose connections are carried to
``127.0.0.1:<port>`` on the host.

The node's namespace cannot reach the host's loopback (a kind node here sits on an internal podman
network), so a second cluster's API server, which listens there, is out of its Pods' reach. This is
how tests/e2e lets the order controller's Pod reach a warehouse cluster, as a Pod of one kind
cluster reaches another's API server on Docker's network.

A short helper process enters the namespace (``nsenter``), opens the listening socket there and
hands it back over a socket pair; the host side accepts on it (a socket keeps the namespace it was
made in) and connects on the host. Nothing here listens outside the node's namespace.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading

# Runs inside the namespace: listen on the given address, pass the socket to the parent, exit.
_LISTEN = """
import socket, sys
address, fd = sys.argv[1], int(sys.argv[2])
listener = socket.create_server((address, 0))
parent = socket.socket(fileno=fd)
socket.send_fds(parent, [str(listener.getsockname()[1]).encode()], [listener.fileno()])
"""
CONNECT_TIMEOUT = 5.0


class Exposed:
    """Connections to ``address:port`` inside the namespace reach ``127.0.0.1:target_port`` on the
    host. While nothing listens there (a server stopped for an outage), they are closed at once,
    as a refused connection would be."""

    def __init__(self, listener: socket.socket, address: str, port: int, target_port: int) -> None:
        self.address, self.port, self.target_port = address, port, target_port
        self._listener = listener
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"expose-{port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._carry, args=(inside,), daemon=True).start()

    def _carry(self, inside: socket.socket) -> None:
        try:
            host = socket.create_connection(("127.0.0.1", self.target_port), timeout=CONNECT_TIMEOUT)
        except OSError:
            inside.close()
            return
        host.settimeout(None)
        with self._lock:
            self._open.update((inside, host))
        back = threading.Thread(target=_pipe, args=(host, inside), daemon=True)
        back.start()
        _pipe(inside, host)
        back.join()
        with self._lock:
            self._open.difference_update((inside, host))
        inside.close()
        host.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until either side ends, then end the other's sending half."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        source.shutdown(socket.SHUT_RD)


def expose(pid: int, address: str, target_port: int) -> Exposed:
    """Listen on ``address`` (a free port) inside the network namespace of process ``pid`` (a kind
    node container's init, whose namespace has no name), forwarding to the host's
    ``127.0.0.1:target_port``. Needs root (``nsenter``)."""
    where = f"/proc/{pid}/ns/net"
    ours, theirs = socket.socketpair()
    with ours, theirs:
        done = subprocess.run(
            ["nsenter", f"--net={where}", sys.executable, "-c", _LISTEN, address, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot listen on {address} in network namespace {where}: {done.stderr.strip()}")
        message, fds, _, _ = socket.recv_fds(ours, 32, 1)
    listener = socket.socket(fileno=fds[0])
    return Exposed(listener, address, int(message), target_port)
