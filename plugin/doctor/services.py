"""Checks on the services: Redis (and its dead letters) and the SMTP server."""
from __future__ import annotations

import smtplib
import ssl
import uuid

from plugin.config import Config
from plugin.doctor.check import FAIL, MAX_LISTED, OK, SKIP, WARN, Check, reason, safe_url


def check_redis(config: Config, timeout: float = 3.0) -> Check:
    from redis import Redis
    from redis.exceptions import RedisError

    name = "redis"
    where = safe_url(config.redis_url)
    try:
        client = Redis.from_url(config.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        return Check(name, FAIL, f"REDIS_URL={where} is not a Redis URL ({exc})", "use redis://[:password@]host:6379/0 or rediss://...")
    try:
        try:
            client.ping()
        except RedisError as exc:
            return Check(name, FAIL, f"cannot reach {where}: {reason(exc)}",
                         "start Redis, or set REDIS_URL to a Redis this machine can reach (and its password)")
        key = f"{config.queue}:doctor:{uuid.uuid4().hex}"
        try:
            client.set(key, "1", ex=60)
            readback = client.get(key)
            client.delete(key)
        except RedisError as exc:
            return Check(name, FAIL, f"{where} answers PING but refuses writes: {reason(exc)}",
                         "point REDIS_URL at the primary (not a read-only replica) and check its maxmemory and ACLs")
        if readback != b"1":
            return Check(name, FAIL, f"{where} answers PING but did not keep a written key",
                         "check the Redis server (eviction policy, proxy in between)")
        return Check(name, OK, f"{where} answers PING and accepts writes")
    finally:
        client.close()


def check_dead_letters(config: Config, timeout: float = 3.0) -> Check:
    """Backlog entries the worker gave up on: each is a webhook (or timer) nobody acted on yet."""
    from redis import Redis
    from redis.exceptions import RedisError

    from plugin import deadletters
    from plugin.handoff import Handoff

    name = "dead letters"
    client = Redis.from_url(config.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        found = deadletters.counts(Handoff(client, config.queue))
    except RedisError as exc:
        return Check(name, SKIP, f"cannot count them: {reason(exc)}")
    finally:
        client.close()
    if not found:
        return Check(name, OK, "none")
    listed = ", ".join(f"shop {shop} ({n})" for shop, n in list(found.items())[:MAX_LISTED])
    more = f" and {len(found) - MAX_LISTED} more shops" if len(found) > MAX_LISTED else ""
    return Check(name, WARN, f"{sum(found.values())} backlog entries were set aside: {listed}{more}",
                 "`keepwell dead-letters list --shop SHOP_ID` says why; fix the cause, then "
                 "`keepwell dead-letters retry --shop SHOP_ID --all` (or `drop`)")


def _tls(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_smtp(config: Config, timeout: float = 5.0) -> Check:
    from plugin.mail import parse_smtp_url

    name = "smtp"
    try:
        server = parse_smtp_url(config.smtp_url)
    except ValueError as exc:
        return Check(name, FAIL, str(exc), "set SMTP_URL to your mail server")
    where = f"{server.scheme}://{server.host}:{server.port}"
    smtp = None
    try:
        if server.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=_tls(server.verify))
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        code, reply = smtp.ehlo()
        if code != 250:
            return Check(name, FAIL, f"{where} answered EHLO with {code} {reply.decode(errors='replace')}",
                         "check SMTP_URL points at an SMTP server")
        if server.scheme == "smtp+starttls":
            smtp.starttls(context=_tls(server.verify))
            smtp.ehlo()
        if server.username:
            smtp.login(server.username, server.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        return Check(name, FAIL, f"{where} refused the login for {server.username!r}: {exc.smtp_code} "
                                 f"{exc.smtp_error.decode(errors='replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}",
                     "check the user name and password in SMTP_URL (percent-encode special characters)")
    except ssl.SSLError as exc:
        return Check(name, FAIL, f"{where}: TLS failed: {reason(exc)}",
                     "use smtps:// for port 465, smtp+starttls:// for 587; ?verify=false accepts a self-signed certificate")
    except (smtplib.SMTPException, OSError) as exc:
        return Check(name, FAIL, f"cannot reach {where}: {reason(exc)}",
                     "start the mail server, or set SMTP_URL to one this machine can reach")
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    return Check(name, OK, f"{where} answers EHLO" + (" and accepts the login" if server.username else ""))
