"""``cds_service.serving`` with several workers: real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cds_service.ehr import free_port
from tests.processes import start, stop

PID_APP = ["-m", "cds_service.serving", "tests.pid_app:app"]


@contextmanager
def serving(port: int, workers: int) -> Iterator[None]:
    process = start([*PID_APP, "--workers", str(workers), "--port", str(port)], f"http://127.0.0.1:{port}/")
    try:
        yield
    finally:
        stop(process)


def test_connections_opened_while_a_worker_is_busy_are_spread_over_the_workers() -> None:
    """An EHR's integration engine (or a load generator) opens its keep-alive connections together.
    With one socket shared by the workers, whichever worker was free at that moment accepted every
    one of them, and the others, once free, had nothing to do."""
    port = free_port()
    with serving(port, workers=2):
        wait_until_both_answer(port)
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET /busy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        time.sleep(0.1)  # one worker is now held for half a second
        connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        for connection in connections:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        pids = {answer(connection) for connection in connections}
        answer(busy)
    assert len(pids) == 2  # the busy worker took its share too, once free


def test_a_worker_that_dies_is_replaced_and_no_connection_waits_on_its_socket() -> None:
    """Its replacement listens on a socket of its own; the dead worker's socket, left open, would hold
    the connections the kernel gave it with nobody to accept them."""
    port = free_port()
    with serving(port, workers=2):
        before = wait_until_both_answer(port)
        os.kill(int(before.pop()), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(wait_until_both_answer(port) - before) < 1:  # the replacement answers
            assert time.monotonic() < deadline, "the dead worker was not replaced"
        connections = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(32)]
        for connection in connections:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert all(answer(connection) for connection in connections)  # none timed out


def wait_until_both_answer(port: int) -> set[bytes]:
    """The process ids of the two workers, once a call on a new connection has reached each: both are
    listening, not only the first to start."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2:
        assert time.monotonic() < deadline, "the second worker never answered"
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            seen.add(answer(connection))
        except ConnectionError:  # reset by a worker just killed (the test that kills one)
            time.sleep(0.05)
    return seen


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
    with taken, pytest.raises(RuntimeError, match=r"exited with 1: cannot listen on 127\.0\.0\.1"):
        start([*PID_APP, "--workers", "2", "--port", str(taken.getsockname()[1])], "http://127.0.0.1:1/")
