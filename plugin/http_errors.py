"""How errors become HTTP answers: the web app's error handlers, registered in one place.

A refused webhook answers JSON ``{"error": reason}`` with the error's status; a refused install
(a bad OAuth callback, a store that cannot be connected) answers the merchant in plain text.
Each refusal is logged with its reason. Errors not named here are bugs: Flask answers 500.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request

from plugin.errors import InstallRefused, WebhookError

webhook_log = logging.getLogger("keepwell.webhooks")
install_log = logging.getLogger("keepwell.install")


def register_error_handlers(app: Flask) -> None:
    """Map each error the web app answers on purpose to its HTTP response."""
    app.register_error_handler(WebhookError, _webhook_refused)
    app.register_error_handler(InstallRefused, _install_refused)


def _webhook_refused(exc: WebhookError) -> tuple[Response, int]:
    webhook_log.warning("refused %s %s from %s: %s (%d)", request.method, request.path, request.remote_addr,
                        exc.reason, exc.status)
    return jsonify(error=exc.reason), exc.status


def _install_refused(exc: InstallRefused) -> Response:
    install_log.warning("install refused: %s %s for shop %r from %s: %s (%d)", request.method, request.path,
                        (request.args.get("shop") or "")[:100], request.remote_addr, exc.reason, exc.status)
    return Response(f"Keepwell could not be installed: {exc.reason}\n", status=exc.status, mimetype="text/plain")
