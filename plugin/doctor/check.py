"""One check's result and the helpers every check shares."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
MIN_SECRET_KEY_LENGTH = 32
MAX_LISTED = 5  # failing shops named in one line


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""

    def __str__(self) -> str:
        line = f"{self.status:<4} {self.name}: {self.detail}"
        return line + (f". Fix: {self.hint}" if self.hint and self.status != OK else "")


def failed(checks) -> bool:
    return any(c.status == FAIL for c in checks)


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url


def reason(exc: BaseException) -> str:
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    message = str(exc).strip().splitlines()
    return message[0].rstrip(".") if message else type(exc).__name__
