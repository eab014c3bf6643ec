"""The edge fails fast when Redis stalls: a real stall (DEBUG SLEEP on a private redis-server on
loopback), signed deliveries to the real app, answers within a second or two, and every
delivery ends up in the backlog exactly once after the store delivers again."""
import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

import children

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from stall import DOMAIN, RedisServer, order_body  # noqa: E402

from connectors.shopify.signature import signature  # noqa: E402
from plugin.app import create_app  # noqa: E402
from plugin.config import Config  # noqa: E402
from plugin.db import sessions, upgrade  # noqa: E402
from plugin.handoff import Envelope, Keys  # noqa: E402
from plugin.shops import add_shop  # noqa: E402

SECRET = "shpss_stall_test_secret"


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def app(private_redis, tmp_path):
    db_url = f"sqlite:///{tmp_path}/keepwell.db"
    upgrade(db_url)
    config = Config(database_url=db_url, redis_url=private_redis.url, shopify_api_secrets=(SECRET,),
                    shopify_api_key="stall-test-key", queue="kwstall", app_url="https://keepwell.example")
    with sessions(db_url).begin() as session:
        row, _ = add_shop(session, config, "shopify", DOMAIN, access_token="shpat_stall", webhook_secret=SECRET)
    app = create_app(config)
    app.shop_id = row.id
    return app


def _post(client, delivery: str):
    body = order_body(1)
    t = time.monotonic()
    r = client.post("/webhooks/shopify", data=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/paid", "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-Webhook-Id": delivery, "X-Shopify-Event-Id": delivery,
        "X-Shopify-Hmac-Sha256": signature(SECRET, body)})
    return r, time.monotonic() - t


def _backlog(app, redis_url: str) -> list[str]:
    raw = Redis.from_url(redis_url).lrange(Keys("kwstall", app.shop_id).backlog, 0, -1)
    return [Envelope.decode(e).key for e in raw]


def test_a_stall_is_answered_503_at_once_and_every_delivery_lands_once(app, private_redis):
    client = app.test_client()
    first = f"d-{uuid.uuid4()}"
    assert _post(client, first)[0].status_code == 202
    stall = private_redis.stall(4)
    time.sleep(0.2)
    during = [f"d-{uuid.uuid4()}" for _ in range(4)]
    answers = [_post(client, d) for d in during]
    # the first waits for the client's 1 s timeout; the others are refused at once (cooldown)
    assert [r.status_code for r, _ in answers] == [503] * 4
    assert all(r.headers["Retry-After"] == "10" and "Redis" in r.get_json()["error"] for r, _ in answers)
    assert 0.9 < answers[0][1] < 2.5
    assert all(took < 0.2 for _, took in answers[1:])
    assert client.get("/health").status_code == 200  # pages that do not need Redis keep working
    stall.join()
    time.sleep(2.1)  # the cooldown ends: the next delivery asks Redis again
    for d in during:  # the store delivers again: accepted, or a duplicate if the first reached Redis
        assert _post(client, d)[0].status_code in (200, 202)
    keys = _backlog(app, private_redis.url)
    assert sorted(keys) == sorted([first, *during])


def test_a_page_that_needs_redis_is_a_clear_503_not_a_hang(app, private_redis):
    client = app.test_client()
    stall = private_redis.stall(3)
    time.sleep(0.2)
    t = time.monotonic()
    r = client.get("/woocommerce/connect")  # rate-limited per client address in Redis
    took = time.monotonic() - t
    stall.join()
    assert r.status_code == 503 and took < 2.5
    assert r.headers["Retry-After"] == "10" and "try again in 10 seconds" in r.get_data(as_text=True)
    assert client.get("/woocommerce/connect").status_code == 200  # Redis is back: the connect form


def test_the_procfile_web_process_keeps_p99_under_5_s_through_an_8_s_stall():
    """bench/stall.py's fail-fast round: gunicorn as in the Procfile, 40 deliveries/s, Redis asleep 8 s."""
    out = children.run([sys.executable, str(ROOT / "bench" / "stall.py"), "--rounds", "1", "--only-after",
                        "--duration", "12"])
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["p99_ms_after"] < 5000 and figures["over_5s_after"] == 0
    assert figures["answers_after"].get("503", 0) > 100  # the stall was real and answered fast
    assert figures["retry_after"] == ["10"]
    assert figures["lost_or_duplicated"] == 0 and figures["pass"] is True
