"""A local SMTP server that accepts every message and appends a summary of it (to, subject,
Message-ID) to a JSON Lines file: the demo's outbox, read back for the report."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path


class JsonLinesHandler:
    """aiosmtpd handler: one JSON line per delivered message."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        line = {
            "received_at": datetime.now(timezone.utc).isoformat(),
            "from": str(msg["From"] or envelope.mail_from),
            "to": [str(a) for a in envelope.rcpt_tos],
            "subject": str(msg["Subject"] or ""),
            "message_id": str(msg["Message-ID"] or ""),
            "size": len(envelope.original_content or envelope.content or b""),
        }
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return "250 Message accepted for delivery"


class SMTPSink:
    """Start/stop an aiosmtpd server on ``host:port`` writing to ``path``."""

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 8025):
        try:
            from aiosmtpd.controller import Controller
        except ImportError:  # pragma: no cover - the Makefile installs it
            raise RuntimeError("the demo's SMTP sink needs aiosmtpd: pip install aiosmtpd "
                               "(or run `make demo`, which installs it)") from None
        self.path = Path(path)
        self.path.touch()
        self.url = f"smtp://{host}:{port}"
        self._controller = Controller(JsonLinesHandler(self.path), hostname=host, port=port)

    def start(self) -> "SMTPSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def read(path: Path) -> list[dict]:
    """Every message summary in the sink's file, oldest first."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
