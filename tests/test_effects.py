"""The effects package: the one retry policy, the registry, no import cycle with the pipeline, and
what a new action kind takes (a spec and an action in the engine, one handler module): shown here
end to end with a postcard kind that exists only in this test."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from sqlalchemy.exc import OperationalError

from plugin import effects, mail
from plugin.db import DecisionRow, EffectRow
from plugin.effects import HANDLERS, GiveUp, Retry, register, retry_policy
from plugin.effects.retry import MAX_EFFECT_ATTEMPTS, backoff
from plugin.engine.actions import ACTIONS, action
from plugin.engine.specs import SPECS, spec
from plugin.engine.decisions import Decision, Kind
from plugin.engine.ruleset import Problems, compile_ruleset
from plugin.errors import DeliveryError, StoreError
from engine_helpers import Shell, day, order_paid, rules_from
from live import running, scheduled

# --- the retry policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("exc, attempts, verdict", [
    (StoreError("429 Too Many Requests", retryable=True, retry_after=7.0), 1, Retry(7.0, "429 Too Many Requests")),
    (StoreError("Throttled", retryable=True, retry_after=0.2), 3, Retry(1.0, "Throttled")),  # at least a second
    (StoreError("Throttled", retryable=True, retry_after=0.2), 4, Retry(135.0, "Throttled")),  # then the backoff
    (StoreError("503", retryable=True), 1, Retry(5.0, "503")),
    (StoreError("503", retryable=True), 2, Retry(15.0, "503")),
    (StoreError("503", retryable=True), MAX_EFFECT_ATTEMPTS - 1, Retry(3600.0, "503")),
    (StoreError("503", retryable=True), MAX_EFFECT_ATTEMPTS, GiveUp("503")),
    (StoreError("Code must be unique", retryable=False, status=422), 1, GiveUp("Code must be unique")),
    (DeliveryError("SMTP server down", retryable=True), 2, Retry(15.0, "SMTP server down")),
    (DeliveryError("550 mailbox unavailable", retryable=False), 1, GiveUp("550 mailbox unavailable")),
    (mail.TemplateError("welcome.html", 3, "'customer' is undefined"), 1,
     GiveUp(str(mail.TemplateError("welcome.html", 3, "'customer' is undefined")))),
    (KeyError("code"), 1, GiveUp("KeyError: 'code'", unexpected=True)),
])
def test_retry_policy(exc, attempts, verdict):
    assert retry_policy(exc, attempts) == verdict


def test_a_store_that_keeps_saying_later_gets_hours():
    delays = [retry_policy(StoreError("Throttled", retryable=True, retry_after=2.0), n).delay
              for n in range(1, MAX_EFFECT_ATTEMPTS)]
    assert delays[:3] == [2.0, 2.0, 2.0] and delays[3:] == [backoff(n, 2.0) for n in range(4, MAX_EFFECT_ATTEMPTS)]
    assert sum(delays) > 3600


def test_our_own_outages_are_no_effects_failure():
    """The runner lets these propagate (the job is retried): the policy is never asked about them."""
    assert isinstance(OperationalError("SELECT 1", {}, Exception("server closed the connection")),
                      effects.retry.OUTAGES)


# --- the registry ----------------------------------------------------------------------------------

def test_a_handler_registers_for_a_known_action_type_once():
    with pytest.raises(ValueError, match="no action type 'fax'"):
        register("fax", run=lambda job, action, eff: None)
    with pytest.raises(ValueError, match="'coupon' already has a handler"):
        register("coupon", run=lambda job, action, eff: None)
    assert HANDLERS["email"].check is not None and HANDLERS["coupon"].resume is not None


@pytest.mark.parametrize("module, forbidden", [
    ("plugin.effects", "plugin.pipeline"),
    ("plugin.engine.actions", "plugin.effects"),
    ("plugin.engine.specs", "plugin.effects"),
])
def test_no_import_cycle(module, forbidden):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('{forbidden}')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_engine_actions_import_nothing_from_the_shell():
    code = "import sys, plugin.engine.specs; print(sorted(m for m in sys.modules if m.startswith(('plugin.', 'connectors'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    shell = [m for m in eval(out) if not m.startswith("plugin.engine") and m not in ("plugin.events", "plugin.shape",
                                                                                       "plugin.errors", "plugin.redact")]
    assert shell == []


# --- a new action kind: a spec and an action in the engine, one handler module ---------------------

@dataclass(frozen=True, slots=True)
class Postcard:
    type: ClassVar[str] = "postcard"
    key: str
    customer_id: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "postcard", "key": self.key, "customer_id": self.customer_id, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> "Postcard":
        return cls(key=d["key"], customer_id=d["customer_id"], message=d["message"])

    def describe(self) -> str:
        return f"postcard {self.message!r}"

    def state_changes(self, changes: dict, state) -> dict:
        return {}


@dataclass(frozen=True, slots=True)
class PostcardSpec:
    type: ClassVar[str] = "postcard"
    marketing: ClassVar[bool] = False
    message: str

    @classmethod
    def parse(cls, value: dict, path: tuple, report, rule_id: str, templates=None) -> "PostcardSpec | None":
        if not value.get("message"):
            report(path + ("message",), "a postcard needs a message")
            return None
        return cls(value["message"])

    def act(self, t, i: int) -> Postcard:
        return Postcard(key=f"{t.key}:{i}", customer_id=t.ctx.state.customer_id, message=self.message)


@pytest.fixture
def postcards():
    """The postcard kind registered as a module of its own would be; the postcards 'sent', and what
    the next send raises (None: it goes through)."""
    sent, failure = [], []

    def send(job, postcard: Postcard, eff) -> None:
        if failure:
            raise failure.pop()
        sent.append(postcard)
        eff.store_id = f"card-{len(sent)}"

    action(Postcard)
    spec(PostcardSpec)
    register(Postcard.type, run=send)
    try:
        yield sent, failure
    finally:
        for registry in (ACTIONS, SPECS, HANDLERS):
            registry.pop("postcard", None)


def postcard_touch(shop: str = "brew-and-bean.myshopify.com") -> Decision:
    rules = rules_from([{"id": "thanks_card", "trigger": "order.paid",
                         "actions": [{"postcard": {"message": "Thank you!"}}, {"tag": "card-sent"}]}])
    shell = Shell(rules, shop=shop)
    (touch,) = shell.handle(order_paid("25", "727", day(1), shop=shop))
    return touch


def test_a_new_kind_goes_from_rule_to_ledger_form(postcards):
    touch = postcard_touch()
    assert touch.kind == Kind.TOUCH
    card, tag = touch.actions
    assert card == Postcard(key=f"{touch.key}:0", customer_id="25", message="Thank you!")
    assert tag.to_dict() == {"type": "tag", "tag": "card-sent", "key": f"{touch.key}:1"}
    assert Decision.from_dict(touch.to_dict()) == touch
    problems = Problems()  # the spec is checked when the rule set loads
    assert compile_ruleset([("cards.yaml", {"rules": [{"id": "blank_card", "trigger": "order.paid",
                                                        "actions": [{"postcard": {}}]}]})], None, problems) is None
    assert problems.items == [((0, "rules", 0, "actions", 0, "postcard", "message"), "a postcard needs a message",
                               "blank_card")]


@pytest.fixture
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = day(1)
        yield live


def ledger(live, touch: Decision) -> str:
    """Write ``touch`` to the ledger as the pipeline does: the decision row, then one row per action."""
    shop_id, _ = live.add_shop("shopify", "brew-and-bean.myshopify.com", access_token="shpat_cards")
    with live.rt.sessions.begin() as session:
        session.add(DecisionRow(shop_id=shop_id, key=touch.key, rule_id=touch.rule_id, customer_id=touch.customer_id,
                                kind="touch", status="pending", event_id=touch.event_id, decision=touch.to_dict()))
        for a in touch.actions:
            session.add(EffectRow(shop_id=shop_id, key=a.key, decision_key=touch.key, customer_id=touch.customer_id,
                                  type=a.type))
    return shop_id


def test_the_runner_runs_a_new_kind_by_its_handler(live, postcards):
    sent, _ = postcards
    touch = postcard_touch()
    touch = touch._replace(actions=touch.actions[:1])  # the postcard alone: the tag would call the store
    shop_id = ledger(live, touch)
    assert effects.run(live.rt, shop_id, touch.key) == "done"
    assert sent == [touch.actions[0]]
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert (eff.status, eff.attempts, eff.store_id, eff.error) == ("done", 1, "card-1", None)
    assert effects.run(live.rt, shop_id, touch.key) == "done" and len(sent) == 1  # a retried job does nothing


def test_a_new_kinds_failures_go_through_the_one_retry_policy(live, postcards):
    sent, failure = postcards
    touch = postcard_touch()
    shop_id = ledger(live, touch._replace(actions=touch.actions[:1]))
    failure.append(StoreError("print shop busy", retryable=True, retry_after=30.0))
    assert effects.run(live.rt, shop_id, touch.key) == "pending"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert (eff.status, eff.attempts, eff.error) == ("pending", 1, "print shop busy")
    ((job, when),) = scheduled(live)  # the store's wait, on RQ's clock
    assert job.args == (shop_id, touch.key)
    # RQ keeps whole seconds, and a retry is never scheduled early: rounded up, so up to a second more
    assert timedelta(seconds=20) < when - datetime.now(timezone.utc) <= timedelta(seconds=31)
    failure.append(StoreError("address unknown", retryable=False))
    assert effects.run(live.rt, shop_id, touch.key) == "failed"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    (d,) = live.rows(DecisionRow, shop_id=shop_id)
    assert (eff.status, eff.attempts, d.status, d.error) == ("failed", 2, "failed", "postcard: address unknown")
    assert sent == []
