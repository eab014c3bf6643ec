"""Keepwell's real web app plus two reference endpoints, for bench/ingest.py only.

``gunicorn 'bench.ingest_app:create_bench_app()'`` serves, from the same processes:

- ``POST /webhooks/shopify``   the real edge (create_app): size check, shop, HMAC, parse, dedupe, hand-off
- ``POST /bench/trivial``      reads the body and answers 200: the ceiling of this stack
- ``POST /bench/minimal``      verifies the HMAC with a known secret and LPUSHes the raw body:
                               the floor any durable hand-off must pay

Settings come from the environment like the real app; BENCH_SECRET is the secret the
minimal endpoint verifies with and BENCH_LIST the Redis list it pushes to.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from flask import request

from plugin.app import create_app


def create_bench_app():
    app = create_app()
    edge = app.extensions["keepwell"]
    redis = edge.handoff.redis
    secret = os.environ["BENCH_SECRET"].encode()
    target = os.environ.get("BENCH_LIST", f"{edge.config.queue}:bench:minimal")

    @app.post("/bench/trivial")
    def trivial():
        request.get_data()
        return "ok", 200

    @app.post("/bench/minimal")
    def minimal():
        body = request.get_data()
        given = request.headers.get("X-Shopify-Hmac-Sha256", "").encode()
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, given):
            return "bad signature", 401
        redis.lpush(target, body)
        return "accepted", 202

    return app
