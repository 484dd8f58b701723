"""Running an ASGI app under uvicorn with one or several worker processes.

Several workers listen on sockets made here rather than by uvicorn: uvicorn creates its socket
without ``proto=IPPROTO_TCP``, and asyncio only sets ``TCP_NODELAY`` on accepted connections whose
socket says IPPROTO_TCP, so every response of a multi-worker uvicorn waited ~40 ms on Nagle's
algorithm and the client's delayed ACK (measured: 44 ms per request instead of 0.2 ms).

And each worker has a socket of its own (``SO_REUSEPORT``, where the OS has it), so the kernel
spreads connections over the workers. With one shared socket, the first worker to wake accepted
every connection waiting (asyncio accepts up to the backlog per wake-up): a client opening its
keep-alive connections at once (an EHR's integration engine, a load generator) could put all of them
on one worker while the other idled. Measured with 16 connections opened together: two workers
served 1,123 calls/s, what one serves, in one run, and twice that in another.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess


def tcp_socket(host: str, port: int, backlog: int = 2048, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket that asyncio recognises as TCP (so its connections get TCP_NODELAY);
    with ``reuse_port``, one of a group on the same port among which the kernel spreads connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _SocketPerWorker(Multiprocess):
    """uvicorn's supervisor (start-up, health checks, restarts), each worker on a socket of its own.

    uvicorn hands ``self.sockets`` to every worker process it starts, at start-up and on restart;
    here each read of it makes a fresh ``SO_REUSEPORT`` socket on the same address. Once the workers
    asked for are started they hold their own copies, and the supervisor closes its own, explicitly
    (not trusting multiprocessing to drop its references): a socket kept open here would outlive its
    worker, and the kernel would go on queueing connections on it that nobody accepts.
    """

    def __init__(self, config: uvicorn.Config, host: str, port: int) -> None:
        self._address = (host, port)
        self._handed_out: list[socket.socket] = []
        tcp_socket(host, port, reuse_port=True).close()  # a taken port fails here, once, not per worker
        super().__init__(config, sockets=[])

    @property
    def sockets(self) -> list[socket.socket]:
        sock = tcp_socket(*self._address, reuse_port=True)
        self._handed_out.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, _: list[socket.socket]) -> None:
        pass

    def init_processes(self) -> None:
        super().init_processes()
        self._close_handed_out()

    def restart_all(self) -> None:
        super().restart_all()
        self._close_handed_out()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._close_handed_out()

    def _close_handed_out(self) -> None:
        # A started worker got its copy when it was spawned (the descriptor is passed at exec).
        for sock in self._handed_out:
            sock.close()
        self._handed_out.clear()


def serve(app: str, *, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve ``app`` (an import string) until interrupted. Access logs stay off: ours name the hook call."""
    config = uvicorn.Config(app, host=host, port=port, workers=workers, log_level=log_level, access_log=False)
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    try:
        supervisor = (
            _SocketPerWorker(config, host, port)
            if hasattr(socket, "SO_REUSEPORT")
            else Multiprocess(config, sockets=[tcp_socket(host, port)])
        )
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    supervisor.run()


def main(argv: list[str] | None = None) -> int:
    """``python -m cds_service.serving APP``: any ASGI app served the same way (the benchmarks use it)."""
    parser = argparse.ArgumentParser(prog="python -m cds_service.serving")
    parser.add_argument("app", help="import string, e.g. cds_service.app:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    serve(args.app, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
