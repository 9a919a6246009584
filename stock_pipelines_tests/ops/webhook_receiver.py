"""A local HTTP webhook receiver: what Slack or Discord would get, recorded."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POSTed JSON body. `statuses`: the answers, in order (the last one repeats),
    e.g. (500, 200) refuses the first alert and takes the rest; `bodies` holds what it took
    (2xx), `refused` what it answered otherwise."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses or (200,))
        self.bodies: list[dict] = []
        self.refused: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                    (receiver.bodies if status < 300 else receiver.refused).append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # the path plays the secret token a real webhook URL carries
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[tuple[str, str, str]]:
        """(event, kind, subject) of each alert taken."""
        return [(b["event"], b["kind"], b["subject"]) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
