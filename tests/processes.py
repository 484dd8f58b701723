"""Real server processes for the integration tests: run from the project folder, used once a URL answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]


def start(
    args: list[str], ready_url: str, env: dict[str, str] | None = None, *, timeout: float = 40
) -> subprocess.Popen[bytes]:
    """``python ARGS`` once ``ready_url`` answers 200; ``RuntimeError`` with its stderr if it exits first,
    or if it does not answer within ``timeout`` seconds."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{' '.join(args)} exited with {process.returncode}: {stderr}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{' '.join(args)} did not answer at {ready_url} within {timeout:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` and wait for it (killed if it lingers)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
