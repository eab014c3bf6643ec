"""How errors become HTTP answers: the web app's error handlers, registered in one place.

A refused webhook answers JSON ``{"error": reason}`` with the error's status; a refused install
(a bad OAuth callback, a store that cannot be connected) answers the merchant in plain text.
Each refusal is logged with its reason. Errors not named here are bugs: Flask answers 500.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from plugin.errors import InstallRefused, WebhookError

#: seconds a 503 asks the client to wait (Redis stalls are seconds long; stores retry on their own schedule)
RETRY_AFTER_S = 10

webhook_log = logging.getLogger("keepwell.webhooks")
install_log = logging.getLogger("keepwell.install")


def register_error_handlers(app: Flask) -> None:
    """Map each error the web app answers on purpose to its HTTP response."""
    app.register_error_handler(WebhookError, _webhook_refused)
    app.register_error_handler(InstallRefused, _install_refused)
    for error in (RedisConnectionError, RedisTimeoutError):
        app.register_error_handler(error, _redis_unavailable)


def _webhook_refused(exc: WebhookError) -> tuple[Response, int]:
    webhook_log.warning("refused %s %s from %s: %s (%d)", request.method, request.path, request.remote_addr,
                        exc.reason, exc.status)
    response = jsonify(error=exc.reason)
    if exc.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, exc.status


def _redis_unavailable(exc: Exception) -> tuple[Response, int]:
    """A page that needed Redis while it did not answer in time: a clear 503, not a hang or a 500."""
    webhook_log.warning("503 for %s %s: Redis did not answer (%s)", request.method, request.path, exc)
    if request.path.startswith("/webhooks/"):
        response = jsonify(error="the backlog (Redis) did not answer; deliver again later")
    else:
        response = Response("Keepwell is briefly unavailable: its queue (Redis) did not answer in time. "
                            f"Please try again in {RETRY_AFTER_S} seconds.\n", mimetype="text/plain")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, 503


def _install_refused(exc: InstallRefused) -> Response:
    install_log.warning("install refused: %s %s for shop %r from %s: %s (%d)", request.method, request.path,
                        (request.args.get("shop") or "")[:100], request.remote_addr, exc.reason, exc.status)
    return Response(f"Keepwell could not be installed: {exc.reason}\n", status=exc.status, mimetype="text/plain")
