"""Hand a message to an SMTP server named by SMTP_URL, and decide whether a failure is worth a retry."""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from plugin.errors import DeliveryError

_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SMTPServer:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    verify: bool


def parse_smtp_url(url: str) -> SMTPServer:
    """smtp://host:port, smtp+starttls://user:pass@host:587 or smtps://user:pass@host:465
    (credentials percent-encoded; ?verify=false accepts self-signed certificates)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(f"bad SMTP_URL {url!r}: use smtp://host:port, smtp+starttls://user:pass@host:587 "
                         f"or smtps://user:pass@host:465")
    verify = parse_qs(parts.query).get("verify", ["true"])[-1].lower() not in ("false", "0", "no")
    return SMTPServer(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or _SCHEMES[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        verify=verify,
    )


def _tls_context(server: SMTPServer) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not server.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _quit(smtp: smtplib.SMTP | None) -> None:
    """Say goodbye without letting a failed QUIT turn a delivered message into an error."""
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def send(message: EmailMessage, smtp_url: str, timeout: float = 10) -> str:
    """Hand ``message`` to the SMTP server at ``smtp_url``; returns its Message-ID.

    Raises DeliveryError. Retryable: connection refused, timeouts, TLS or login failures,
    disconnects and any 4xx reply. Not retryable: a 5xx reply to the recipient or the message
    itself (550 no such user, 554 rejected). The Message-ID is the same on every retry.
    """
    server = parse_smtp_url(smtp_url)
    smtp = None
    sending = False  # before this, failures are about our setup and hit every email alike
    try:
        if server.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=_tls_context(server))
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
            if server.scheme == "smtp+starttls":
                smtp.starttls(context=_tls_context(server))
        if server.username:
            smtp.login(server.username, server.password or "")
        sending = True
        smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise _delivery_error(code, reply, sending) from exc
    except smtplib.SMTPResponseException as exc:
        raise _delivery_error(exc.smtp_code, exc.smtp_error, sending) from exc
    except smtplib.SMTPNotSupportedError as exc:
        # during sending: the message needs an extension (SMTPUTF8) this server lacks
        raise DeliveryError(f"SMTP server {server.host}: {exc}", retryable=not sending) from exc
    except OSError as exc:  # refused, timeouts, TLS failures, disconnects (SMTPException is an OSError)
        raise DeliveryError(f"SMTP server {server.host}:{server.port}: {str(exc) or type(exc).__name__}",
                            retryable=True) from exc
    finally:
        _quit(smtp)
    return str(message["Message-ID"])


def _delivery_error(code: int, reply, sending: bool) -> DeliveryError:
    """The one place that decides whether an SMTP reply is worth retrying."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    permanent = sending and 500 <= code < 600
    return DeliveryError(f"SMTP {code} {reply}", retryable=not permanent)
