"""``cds_service.serving`` with several workers: real processes on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from cds_service.ehr import free_port

ROOT = Path(__file__).parents[2]


@contextmanager
def serving(port: int, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cds_service.serving",
            "tests.pid_app:app",
            "--workers",
            str(workers),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_until_answering(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)


def test_connections_opened_while_a_worker_is_busy_are_spread_over_the_workers() -> None:
    """An EHR's integration engine (or a load generator) opens its keep-alive connections together.
    With one socket shared by the workers, whichever worker was free at that moment accepted every
    one of them, and the others, once free, had nothing to do."""
    port = free_port()
    with serving(port, workers=2) as process:
        wait_until_answering(port, process)
        time.sleep(1.0)  # both workers listening, not only the first to start
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        time.sleep(0.1)  # one worker is now held for half a second
        connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        for connection in connections:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        pids = {answer(connection) for connection in connections}
        answer(busy)
    assert len(pids) == 2  # the busy worker took its share too, once free


def answer(connection: socket.socket) -> bytes:
    """The body of the one response on ``connection`` (closed after it)."""
    with connection:
        received = b""
        while chunk := connection.recv(4096):
            received += chunk
    return received.split(b"\r\n\r\n", 1)[1]


def test_a_port_already_taken_is_refused_at_once_with_the_reason() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with taken, serving(taken.getsockname()[1], workers=2) as process:
        assert process.wait(timeout=30) != 0
        assert process.stderr is not None
        assert b"cannot listen on 127.0.0.1" in process.stderr.read()
