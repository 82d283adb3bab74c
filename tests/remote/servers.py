"""Servers on 127.0.0.1 for the remote-LLM tests: a real ``transformers serve`` and
small scripted ones for the failures a real server will not produce on demand.

``transformers serve DIR`` serves a local model folder with no hub: the folder is
preloaded before the port opens and the server is pinned to it, under the folder's path
as its model name (what ``/v1/models`` lists).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2

TRANSFORMERS_CLI = Path(sys.executable).with_name("transformers")


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServe:
    """``transformers serve`` on a free loopback port, in its own process group."""

    def __init__(self, model_dir: Path, start_timeout_s: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.name = str(model_dir)
        self._lines: list[str] = []
        self._ready = threading.Event()  # uvicorn said it serves, or the process ended
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(TRANSFORMERS_CLI), "serve", str(model_dir), "--host", "127.0.0.1",
             "--port", str(self.port), "--device", "cpu"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", env=env, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read_output, daemon=True).start()
        try:
            if not self._ready.wait(start_timeout_s):
                raise AssertionError(
                    f"transformers serve did not start in {start_timeout_s:g} s:\n"
                    + self.log_tail()
                )
            if self.process.poll() is not None:
                raise AssertionError(
                    f"transformers serve exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            self.served = served_models(self.url)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - self.started

    def _read_output(self) -> None:
        """Keeps the server's output for failure messages; signals uvicorn's ready line."""
        for line in self.process.stdout:
            self._lines.append(line)
            if "Uvicorn running on" in line:
                self._ready.set()
        self._ready.set()  # the process closed its output: it has ended

    def log_tail(self, chars: int = 3000) -> str:
        return "".join(self._lines)[-chars:]

    def kill(self) -> None:
        """SIGKILL, as a crash would: the kernel closes its sockets mid-stream."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def served_models(url: str) -> list[str]:
    """The model names ``{url}/models`` lists."""
    response = httpx2.get(f"{url}/models", timeout=10.0)
    response.raise_for_status()
    return [m["id"] for m in response.json()["data"]]


def wait_for_client_to_leave(handler: BaseHTTPRequestHandler, timeout_s: float) -> None:
    """Block until the client closes the connection (a read finds its end), at most
    ``timeout_s``; its leaving is raised as BrokenPipeError, which ``Scripted`` records."""
    handler.connection.settimeout(timeout_s)
    try:
        left = handler.connection.recv(1) == b""
    except TimeoutError:
        left = False
    except ConnectionResetError:
        left = True
    if left:
        raise BrokenPipeError("the client closed the connection")


class Scripted:
    """A loopback HTTP server whose every request is answered by ``handle(request)``.

    ``requests`` records (method, path, headers, body) for the test to inspect;
    ``disconnected`` is set once a streamed reply finds the client gone.
    """

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.disconnected = threading.Event()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                scripted.requests.append((self.command, self.path, dict(self.headers), body))
                try:
                    handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    scripted.disconnected.set()

            do_GET = do_POST = _any

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Scripted:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def models_listing(*names: str) -> dict:
    return {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}


def start_stream(handler: BaseHTTPRequestHandler) -> None:
    """Headers of an SSE reply with no length: the body runs until the connection closes."""
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()


def send_delta(handler: BaseHTTPRequestHandler, content: str) -> None:
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}}],
    }
    handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
    handler.wfile.flush()


def send_text(handler: BaseHTTPRequestHandler, text: str, finish: str | None = None) -> None:
    """One event of a streamed ``/completions`` reply (raw text, no chat delta); with
    ``finish`` it is the last, and ``[DONE]`` follows."""
    chunk = {
        "object": "text_completion",
        "choices": [{"index": 0, "text": text, "finish_reason": finish}],
    }
    events = f"data: {json.dumps(chunk)}\n\n" + ("data: [DONE]\n\n" if finish else "")
    handler.wfile.write(events.encode())
    handler.wfile.flush()


class SilentServer:
    """Listens on a loopback port and never answers: the kernel completes the handshake
    (the backlog), nobody reads the request."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc) -> None:
        self._socket.close()
