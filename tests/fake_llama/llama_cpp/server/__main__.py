"""A fake llama.cpp server that fails the way a llama.cpp built for the wrong CPU does.

`FAKE_LLAMA` picks the behaviour:
- `crash` (default): answers /v1/models, then dies of SIGSEGV on the first chat completion, as a
  build with AMX kernels does on a CPU that will not run them;
- `crash-at-start`: dies of SIGILL before it listens (a build for a newer CPU than this one);
- `mute`: stays up, but every completion comes back empty;
- `ok`: writes a short sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("FAKE_LLAMA", "crash")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": "fake-gguf", "object": "model"}]})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if MODE == "crash":
            # In this thread, now: os.kill(getpid()) may land on another thread, and this one
            # could still answer before the process dies (the probe then passes, at times).
            signal.raise_signal(signal.SIGSEGV)
        content = "" if MODE == "mute" else "The sea is a calm, deep blue."
        self._json({"id": "fake", "object": "chat.completion", "model": "fake-gguf",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}]})

    def _json(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()  # the real server's other options are ignored
    if MODE == "crash-at-start":
        os.kill(os.getpid(), signal.SIGILL)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
