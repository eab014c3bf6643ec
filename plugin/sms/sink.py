"""A local SMS sink: a loopback HTTP server speaking Twilio's Messages API shape, keeping every
message it is given (in memory, and as JSON Lines when given a file): ``make demo`` and the tests
point ``KEEPWELL_TWILIO_API_URL`` at it, so texts go through the real provider code.

``POST /2010-04-01/Accounts/{sid}/Messages.json`` (Basic auth, form fields To, From or
MessagingServiceSid, Body) answers 201 with a Message resource as Twilio does (``sid`` SM…,
``status`` queued, ``num_segments``), or Twilio's error document: 401/20003 for wrong credentials
(when the sink was given some), 400/21211 for a To that is not E.164, 400/21610 for a number in
``unsubscribed``. ``GET`` on the same path lists the messages kept (``{"messages": [...]}``).
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from plugin.engine.sms import segments

_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _error(code: int, message: str, status: int) -> dict:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class SmsSink:
    """Start/stop the sink on ``host:port`` (port 0: any free one); ``url`` is its base URL."""

    def __init__(self, path: Path | None = None, host: str = "127.0.0.1", port: int = 0,
                 credentials: dict[str, str] | None = None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.touch()
        self.credentials = credentials  # account sid -> auth token; None: any
        self.unsubscribed: set[str] = set()
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> "SmsSink":
        self._thread = threading.Thread(target=self._server.serve_forever, name="sms-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def keep(self, message: dict) -> None:
        with self._lock:
            self.messages.append(message)
            if self.path:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(message, ensure_ascii=False) + "\n")

    def answer(self, sid: str, auth: str | None, form: dict[str, str]) -> tuple[int, dict]:
        if self.credentials is not None:
            user, _, token = base64.b64decode((auth or "Basic ").split(" ", 1)[1] or b"").decode().partition(":")
            if user != sid or self.credentials.get(sid) != token:
                return 401, _error(20003, "Authenticate", 401)
        to, body = form.get("To", ""), form.get("Body", "")
        if not _E164.match(to):
            return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400)
        if to in self.unsubscribed:
            return 400, _error(21610, "Attempt to send to unsubscribed recipient", 400)
        if not body:
            return 400, _error(21602, "Message body is required.", 400)
        now = format_datetime(datetime.now(timezone.utc), usegmt=True)
        message = {"sid": "SM" + secrets.token_hex(16), "account_sid": sid, "to": to, "from": form.get("From"),
                   "messaging_service_sid": form.get("MessagingServiceSid"), "body": body, "status": "queued",
                   "num_segments": str(segments(body).parts), "direction": "outbound-api", "api_version": "2010-04-01",
                   "date_created": now, "date_updated": now, "date_sent": None, "price": None, "price_unit": "USD",
                   "error_code": None, "error_message": None,
                   "uri": f"/2010-04-01/Accounts/{sid}/Messages/{{sid}}.json"}
        message["uri"] = message["uri"].replace("{sid}", message["sid"])
        self.keep(message)
        return 201, message


def _handler(sink: SmsSink):
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, doc: dict) -> None:
            raw = json.dumps(doc, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            match = _PATH.match(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            if match is None:
                return self._reply(404, _error(20404, "The requested resource was not found", 404))
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            self._reply(*sink.answer(match.group(1), self.headers.get("Authorization"), form))

        def do_GET(self) -> None:  # noqa: N802
            match = _PATH.match(self.path)
            if match is None:
                return self._reply(404, _error(20404, "The requested resource was not found", 404))
            with sink._lock:
                kept = [m for m in sink.messages if m["account_sid"] == match.group(1)]
            self._reply(200, {"messages": kept[::-1]})

        def log_message(self, format: str, *args) -> None:  # quiet: the demo prints its own lines
            pass

    return Handler


def read(path: Path) -> list[dict]:
    """Every message the sink wrote to ``path``, oldest first."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
