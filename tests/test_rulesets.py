"""Rule set versions per shop: `keepwell rules push/pull/diff/history`, and delayed work that
keeps the version it was scheduled under (on the live harness: real worker, Redis, SMTP, database)."""
import json
from datetime import timedelta

import pytest

import responses
from click.testing import CliRunner

from live import load_json, start, stop, woo_customer, woo_order
from plugin import pipeline, rulesets
from plugin.cli import main
from plugin.db import DecisionRow, EffectRow, RuleSetRow, TimerRow
from plugin.engine.decisions import stable_percent
from plugin.errors import UnknownShop
from plugin.rulefile import RULES_DIR
from plugin.pipeline import sweep_timers
from plugin.shops import read_rule_dir, rules_for

STORE = "https://store.example"
COUPONS = f"{STORE}/wp-json/wc/v3/coupons"


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    yield live
    stop(live)


@pytest.fixture
def sqlite_live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    yield live
    stop(live)


def keepwell(live, *args):
    """Run the CLI against the live harness's database."""
    env = {"DATABASE_URL": live.config.database_url, "KEEPWELL_SECRET_KEY": live.config.secret_key}
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def woo_shop(live):
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    return shop_id, secret


def rule_dir(path, **edits):
    """The shipped rules written to ``path``; ``edits`` maps a file name (icebreaker_yaml,
    templates__icebreaker_txt) to (old, new) replacements of the first occurrence."""
    files = read_rule_dir(RULES_DIR)
    for key, changes in edits.items():
        name = key.replace("__", "/").replace("_yaml", ".yaml").replace("_txt", ".txt")
        for old, new in changes:
            assert old in files[name], (name, old)
            files[name] = files[name].replace(old, new, 1)
    rulesets.write_files(files, path)
    return path


def versions(live, shop_id):
    return sorted((r.version, r.active, r.engine_version) for r in live.rows(RuleSetRow, shop_id=shop_id))


# --- push -----------------------------------------------------------------------------------------

@responses.activate
def test_push_valid_makes_a_new_active_version_the_worker_uses(live, tmp_path):
    shop_id, secret = woo_shop(live)
    (v1,) = live.rows(RuleSetRow, shop_id=shop_id)
    folder = rule_dir(tmp_path / "rules", welcome_yaml=[("discount: 10%", "discount: 12%"), ("Here is 10% off", "Here is 12% off")])

    r = keepwell(live, "rules", "push", "--shop", shop_id, folder)
    assert r.exit_code == 0, r.output
    v2 = next(row for row in live.rows(RuleSetRow, shop_id=shop_id) if row.version == 2)
    assert r.stdout == f"shop {shop_id}: version 2 is active (digest {v2.digest}, engine {v2.engine_version})\n"
    assert versions(live, shop_id) == [(1, False, v1.engine_version), (2, True, v2.engine_version)]
    assert v2.engine_version != v1.engine_version and v2.files == read_rule_dir(folder)

    responses.post(COUPONS, json=load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json"), status=201)
    assert live.post_woocommerce(shop_id, secret, "customer.created", woo_customer()).status_code == 202
    welcome_an_hour_later(live)
    decision, = live.rows(DecisionRow, rule_id="welcome")
    assert decision.status == "done", decision.error
    assert decision.ruleset_version == v2.engine_version
    assert json.loads(responses.calls[0].request.body)["amount"] == "12"
    msg, = live.smtp.messages
    assert "12% off" in msg["Subject"]


def test_push_identical_content_makes_no_new_version(sqlite_live, tmp_path):
    live = sqlite_live
    shop_id, _ = woo_shop(live)
    shipped = rule_dir(tmp_path / "shipped")
    r = keepwell(live, "rules", "push", "--shop", shop_id, shipped)
    assert (r.exit_code, r.stdout) == (0, f"shop {shop_id}: no change: {shipped} is identical to the active version 1\n")

    changed = rule_dir(tmp_path / "changed", vip_yaml=[("priority: 80", "priority: 81")])
    assert keepwell(live, "rules", "push", "--shop", shop_id, changed).exit_code == 0
    r = keepwell(live, "rules", "push", "--shop", shop_id, changed)
    assert (r.exit_code, r.stdout) == (0, f"shop {shop_id}: no change: {changed} is identical to the active version 2\n")
    assert [v for v, _, _ in versions(live, shop_id)] == [1, 2]

    # going back to earlier content is a new version (a rollback is recorded like any change)
    r = keepwell(live, "rules", "push", "--shop", shop_id, shipped)
    assert r.exit_code == 0 and "version 3 is active" in r.stdout
    v1, v2, v3 = versions(live, shop_id)
    assert v3[1] and v3[2] == v1[2] and not v1[1] and not v2[1]


@responses.activate
def test_push_broken_is_rejected_with_the_lint_lines_and_the_worker_keeps_the_last_good(live, tmp_path):
    shop_id, secret = woo_shop(live)
    good = rule_dir(tmp_path / "good", welcome_yaml=[("discount: 10%", "discount: 12%")])
    assert keepwell(live, "rules", "push", "--shop", shop_id, good).exit_code == 0
    broken = rule_dir(tmp_path / "broken", welcome_yaml=[("discount: 10%", "discount: ten percent"),
                                                         ("template: welcome\n", "template: welcom\n")])

    r = keepwell(live, "rules", "push", "--shop", shop_id, broken)
    lint = keepwell(live, "rules", "lint", broken)
    assert r.exit_code == 1 and lint.exit_code == 1
    assert r.stdout == lint.stdout == (
        f"{broken}/welcome.yaml:18:11: [welcome] bad discount 'ten percent': write a percentage ('15%') or an "
        "amount in the shop's currency (5)\n"
        f"{broken}/welcome.yaml:22:11: [welcome] email template 'welcom' not found (did you mean 'welcome'?) "
        f"(templates are {broken}/templates/NAME.html and NAME.txt)\n")
    assert r.stderr == f"rejected: 2 problem(s) in {broken}; version 2 stays active\n"
    v1, v2 = versions(live, shop_id)
    assert v2[:2] == (2, True) and not v1[1]

    # the worker still decides with version 2
    responses.post(COUPONS, json=load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json"), status=201)
    assert live.post_woocommerce(shop_id, secret, "customer.created", woo_customer()).status_code == 202
    welcome_an_hour_later(live)
    decision, = live.rows(DecisionRow, rule_id="welcome")
    assert decision.status == "done", decision.error
    assert decision.ruleset_version == v2[2]
    assert json.loads(responses.calls[0].request.body)["amount"] == "12"


def test_push_refuses_a_folder_without_rule_files(sqlite_live, tmp_path):
    shop_id, _ = woo_shop(sqlite_live)
    (tmp_path / "empty").mkdir()
    r = keepwell(sqlite_live, "rules", "push", "--shop", shop_id, tmp_path / "empty")
    assert r.exit_code == 1 and r.stderr == f"Error: {tmp_path / 'empty'} holds no rule files (*.yaml, *.yml)\n"
    assert len(versions(sqlite_live, shop_id)) == 1


def test_unknown_shop_is_a_clear_error(sqlite_live, tmp_path):
    folder = rule_dir(tmp_path / "rules")
    message = "Error: no shop 'wo_nope' (see `keepwell shop list`)\n"
    for args, code in [(("push", "--shop", "wo_nope", folder), 1), (("pull", "--shop", "wo_nope", tmp_path / "out"), 1),
                       (("diff", "--shop", "wo_nope", folder), 2), (("history", "--shop", "wo_nope"), 1)]:
        r = keepwell(sqlite_live, "rules", *args)
        assert (r.exit_code, r.stderr) == (code, message), args
    assert not (tmp_path / "out").exists()
    with sqlite_live.rt.sessions() as session, pytest.raises(UnknownShop):
        rulesets.history(session, "wo_nope")


# --- pull, diff, history ------------------------------------------------------------------------------

def test_pull_writes_the_active_or_a_given_version(sqlite_live, tmp_path):
    live = sqlite_live
    shop_id, _ = woo_shop(live)
    changed = rule_dir(tmp_path / "changed", icebreaker_yaml=[("discount: 15%", "discount: 20%")])
    (changed / "welcome.yaml").unlink()  # welcome's templates stay: unused templates are fine
    assert keepwell(live, "rules", "push", "--shop", shop_id, changed).exit_code == 0

    out = tmp_path / "out"
    r = keepwell(live, "rules", "pull", "--shop", shop_id, out)
    assert r.exit_code == 0 and r.stdout == f"shop {shop_id}: wrote version 2 (active), {len(read_rule_dir(changed))} files, to {out}\n"
    assert read_rule_dir(out) == read_rule_dir(changed)

    # a non-empty folder needs --force
    r = keepwell(live, "rules", "pull", "--shop", shop_id, "--version", 1, out)
    assert r.exit_code == 1
    assert r.stderr == f"Error: {out} is not empty: pull into an empty folder, or pass --force to overwrite\n"
    assert read_rule_dir(out) == read_rule_dir(changed)

    (out / "NOTES.md").write_text("mine")
    r = keepwell(live, "rules", "pull", "--shop", shop_id, "--version", 1, "--force", out)
    assert r.exit_code == 0 and "wrote version 1, " in r.stdout
    assert read_rule_dir(out) == read_rule_dir(RULES_DIR)
    assert (out / "NOTES.md").read_text() == "mine"  # only rule and template files are replaced

    (out / "extra.yaml").write_text("rules: []\n")
    assert keepwell(live, "rules", "pull", "--shop", shop_id, "--force", out).exit_code == 0
    assert read_rule_dir(out) == read_rule_dir(changed)  # welcome.yaml and extra.yaml gone: pull then push round-trips

    r = keepwell(live, "rules", "pull", "--shop", shop_id, "--version", 9, tmp_path / "nine")
    assert (r.exit_code, r.stderr) == (1, f"Error: shop {shop_id} has no rule set version 9 "
                                          f"(see `keepwell rules history --shop {shop_id}`)\n")


def test_write_files_refuses_names_outside_the_folder(tmp_path):
    for name in ("../evil.yaml", "templates/../../x.txt", "sub/x.yaml", "/abs.yaml"):
        with pytest.raises(ValueError, match="refusing"):
            rulesets.write_files({name: "x"}, tmp_path / "out")


def test_diff_shows_a_unified_diff_and_exits_1_when_different(sqlite_live, tmp_path):
    live = sqlite_live
    shop_id, _ = woo_shop(live)
    same = rule_dir(tmp_path / "same")
    r = keepwell(live, "rules", "diff", "--shop", shop_id, same)
    assert (r.exit_code, r.stdout) == (0, "")

    other = rule_dir(tmp_path / "other", icebreaker_yaml=[("discount: 15%", "discount: 20%")])
    (other / "welcome.yaml").unlink()
    (other / "templates" / "note.txt").write_text("hello\nworld")
    r = keepwell(live, "rules", "diff", "--shop", shop_id, other)
    assert r.exit_code == 1
    assert r.stdout.startswith(
        f"--- v1/icebreaker.yaml\n+++ {other}/icebreaker.yaml\n@@ -19,7 +19,7 @@\n"
        "       once_per_customer: true\n     actions:\n       - coupon:\n"
        "-          discount: 15%\n+          discount: 20%\n"
        "           expires_in: 30d\n           minimum_subtotal: 30\n           code_prefix: THANKS\n"
        f"--- /dev/null\n+++ {other}/templates/note.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n\\ No newline at end of file\n"
        f"--- v1/welcome.yaml\n+++ /dev/null\n@@ -1,")
    welcome_lines = (RULES_DIR / "welcome.yaml").read_text().splitlines()
    assert r.stdout.endswith("".join(f"-{line}\n" for line in welcome_lines))

    # what diff reports is what a push changes: after pushing, no difference
    assert keepwell(live, "rules", "push", "--shop", shop_id, other).exit_code == 0
    assert keepwell(live, "rules", "diff", "--shop", shop_id, other).exit_code == 0


def test_history_lists_versions_with_the_active_marker(sqlite_live, tmp_path):
    live = sqlite_live
    shop_id, _ = woo_shop(live)
    fewer = rule_dir(tmp_path / "fewer")
    (fewer / "welcome.yaml").unlink()  # 2 rules fewer
    assert keepwell(live, "rules", "push", "--shop", shop_id, fewer).exit_code == 0

    r = keepwell(live, "rules", "history", "--shop", shop_id)
    assert r.exit_code == 0
    rows = sorted(live.rows(RuleSetRow, shop_id=shop_id), key=lambda row: row.version)
    shipped = rulesets.count_rules(read_rule_dir(RULES_DIR))
    assert shipped == 15
    expected = ["  version  created (UTC)        digest            engine        rules"]
    for row, marker, count in zip(rows, " *", (shipped, shipped - 2)):
        expected.append(f"{marker} {row.version:>7}  {row.created_at:%Y-%m-%d %H:%M:%S}  {row.digest:<16}  "
                        f"{row.engine_version:<12}  {count:>5}")
    assert r.stdout.splitlines() == expected


# --- delayed work keeps its version ---------------------------------------------------------------------

def _customers_outside_holdout(shop_id, n):
    out, cid = [], 40
    while len(out) < n:
        if stable_percent(shop_id, "icebreaker", str(cid)) >= 10:
            out.append(cid)
        cid += 1
    return out


def _first_order(live, shop_id, secret, customer_id, order_id):
    email = f"c{customer_id}@example.com"
    r = live.post_woocommerce(shop_id, secret, "order.updated", woo_order(order_id=order_id, customer_id=customer_id, email=email))
    assert r.status_code == 202, r.data
    live.work()
    timer, = [t for t in live.rows(TimerRow, shop_id=shop_id, customer_id=str(customer_id)) if ":icebreaker:" in t.key]
    return timer


@responses.activate
def test_a_delayed_icebreaker_runs_under_the_version_it_was_scheduled_with(live, tmp_path):
    shop_id, secret = woo_shop(live)
    (v1,) = live.rows(RuleSetRow, shop_id=shop_id)
    created = load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json")
    responses.post(COUPONS, json=created, status=201)
    responses.get(f"{STORE}/wp-json/wc/v3/products", json=[])  # the orders' products, deleted since
    a, b = _customers_outside_holdout(shop_id, 2)
    timer_a = _first_order(live, shop_id, secret, a, 901)
    timer_b = _first_order(live, shop_id, secret, b, 902)
    assert timer_a.event["data"]["version"] == timer_b.event["data"]["version"] == v1.engine_version

    v2_dir = rule_dir(tmp_path / "v2", icebreaker_yaml=[("discount: 15%", "discount: 20%"), ("15% off", "20% off")],
                      templates__icebreaker_txt=[("\n", "\nVERSION TWO TEMPLATE\n", )])
    assert keepwell(live, "rules", "push", "--shop", shop_id, v2_dir).exit_code == 0
    v2 = next(r for r in live.rows(RuleSetRow, shop_id=shop_id) if r.version == 2)
    assert v2.active and v2.engine_version != v1.engine_version
    responses.calls.reset()
    live.smtp.messages.clear()

    # 14 days later customer A's timer fires: version 1's coupon, subject and template
    live.clock.now += timedelta(days=15)
    assert pipeline.fire_timer(live.rt, shop_id, timer_a.key)
    live.work()
    decision, = live.rows(DecisionRow, rule_id="icebreaker", customer_id=str(a))
    assert decision.status == "done", decision.error
    assert decision.ruleset_version == v1.engine_version
    coupon, = [e for e in live.rows(EffectRow, decision_key=decision.key) if e.type == "coupon"]
    sent = json.loads(responses.calls[0].request.body)
    assert sent["code"] == coupon.coupon_code and sent["amount"] == "15" and sent["discount_type"] == "percent"
    msg, = live.smtp.messages
    assert "15% off" in msg["Subject"] and "VERSION TWO" not in msg.get_body(("plain",)).get_content()

    # version 1 is gone (deleted): B's timer falls back to the active version 2
    with live.rt.sessions.begin() as session:
        session.delete(session.get(RuleSetRow, v1.id))
    responses.calls.reset()
    live.smtp.messages.clear()
    assert pipeline.fire_timer(live.rt, shop_id, timer_b.key)
    live.work()
    decision, = live.rows(DecisionRow, rule_id="icebreaker", customer_id=str(b))
    assert decision.status == "done", decision.error
    assert decision.ruleset_version == v2.engine_version
    assert json.loads(responses.calls[0].request.body)["amount"] == "20"
    msg, = live.smtp.messages
    assert "20% off" in msg["Subject"] and "VERSION TWO TEMPLATE" in msg.get_body(("plain",)).get_content()


def test_rules_for_picks_the_version_else_the_active_one(sqlite_live, tmp_path):
    live = sqlite_live
    shop_id, _ = woo_shop(live)
    (v1,) = live.rows(RuleSetRow, shop_id=shop_id)
    # version 2 changes only a template: same engine version as 1
    templ = rule_dir(tmp_path / "templ", templates__icebreaker_txt=[("\n", "\nNEW\n")])
    other = rule_dir(tmp_path / "other", icebreaker_yaml=[("discount: 15%", "discount: 20%")])
    assert keepwell(live, "rules", "push", "--shop", shop_id, templ).exit_code == 0
    assert keepwell(live, "rules", "push", "--shop", shop_id, other).exit_code == 0
    v3 = next(r for r in live.rows(RuleSetRow, shop_id=shop_id) if r.version == 3)
    with live.rt.sessions() as session:
        assert rules_for(session, shop_id)[0].version == v3.engine_version
        assert rules_for(session, shop_id, "no-such-version")[0].version == v3.engine_version
        ruleset, templates = rules_for(session, shop_id, v1.engine_version)
        # two versions share the engine version: the newest of them (version 2, with its template)
        assert ruleset.version == v1.engine_version and "NEW" in templates["icebreaker.txt"]


def welcome_an_hour_later(live):
    """Work the signup, then let the welcome's one-hour delay pass and work its timer."""
    live.work()
    live.clock.now += timedelta(hours=1, minutes=5)
    assert sweep_timers(live.rt) >= 1
    live.work()
