"""The Flask application factory: ``flask --app plugin.app run`` or
``gunicorn 'plugin.app:create_app()'``."""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from flask import Flask, jsonify

import connectors
from plugin import headers
from plugin.config import Config
from plugin.db import sessions
from plugin.handoff import Handoff
from plugin.redact import install_log_redaction
from plugin.runtime import redis_client
from webhooks.shops import ShopCache


@dataclass
class Edge:
    """What request handlers share: configuration, database sessions, the hand-off, shops."""

    config: Config
    sessions: object
    handoff: Handoff
    shops: ShopCache

    def connected(self, shop_id: str) -> None:
        """A store was installed or connected: its past is folded in by a worker, without acting on it."""
        from plugin import importing

        importing.enqueue(self.handoff.queue, shop_id)


def create_app(config: Config | None = None) -> Flask:
    """Build the web app; settings come from the environment unless ``config`` is given."""
    config = config or Config.from_env()
    app = Flask("keepwell")
    app.config["MAX_CONTENT_LENGTH"] = None  # the webhook edge enforces its own limit (413)
    db = sessions(config.database_url)
    redis = redis_client(config.redis_url, config.edge_redis_timeout or None)  # 503 rather than a hang
    app.extensions["keepwell"] = Edge(config, db, Handoff(redis, config.queue), ShopCache(db, config))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()

    from plugin.http_errors import register_error_handlers
    from plugin.unsubscribe import bp as unsubscribe_bp
    from webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(__import__("webhooks.events_api", fromlist=["bp"]).bp)
    app.register_blueprint(unsubscribe_bp)
    app.register_blueprint(__import__("plugin.pages.views", fromlist=["bp"]).bp)
    app.register_blueprint(__import__("plugin.sms_consent.twilio", fromlist=["bp"]).bp)
    app.register_blueprint(__import__("plugin.data_requests", fromlist=["bp"]).bp)
    for platform in connectors.platforms():  # each platform's install and connect pages
        if connectors.get(platform).blueprint is not None:
            app.register_blueprint(connectors.get(platform).blueprint)
    app.register_blueprint(__import__("plugin.admin", fromlist=["bp"]).bp)

    register_error_handlers(app)
    app.after_request(headers.apply)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    # What is loaded now lives as long as the process: keep it out of every later GC pass
    # (full collections were most of the webhook endpoint's p99 under load).
    gc.collect()
    gc.freeze()

    return app
