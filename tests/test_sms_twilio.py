"""The Twilio provider against Twilio's documented request and answers (mocked at the HTTP layer
with ``responses``; documents in tests/fixtures/twilio/), its failures through the one retry
policy, and the local SMS sink answering the same API shape over a real loopback socket."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses

from plugin.config import Config
from plugin.effects.retry import GiveUp, Retry, retry_policy
from plugin.sms import SmsError, provider_for
from plugin.sms.sink import SmsSink, read

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f2c3a1b0e9d8c7b6a5f4e3d2c1b0a9f8"
SETTINGS = {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN, "from": "+14155552345"}
API = "https://api.twilio.com"
URL = f"{API}/2010-04-01/Accounts/{SID}/Messages.json"
HEBREW = "שלום דנה! הקופון שלך: THANKS-K3J5Q2ZX7ABC"


def doc(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def twilio(settings=SETTINGS, api=API):
    return provider_for(settings, Config(twilio_api_url=api))


@responses.activate
def test_a_message_is_posted_as_twilio_documents_and_its_sid_returned():
    responses.post(URL, json=doc("message_created.json"), status=201)
    assert twilio().send("+972525551234", HEBREW) == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(call.request.body) == {"To": ["+972525551234"], "From": ["+14155552345"], "Body": [HEBREW]}


@responses.activate
def test_a_messaging_service_sends_as_messaging_service_sid():
    responses.post(URL, json=doc("message_created.json"), status=201)
    twilio({**SETTINGS, "from": "MG" + "a" * 32}).send("+12015550123", "Hi")
    form = parse_qs(responses.calls[0].request.body)
    assert form["MessagingServiceSid"] == ["MG" + "a" * 32] and "From" not in form


@responses.activate
@pytest.mark.parametrize("status, name, headers, retryable, flags", [
    (400, "error_21211.json", {}, False, ("invalid_number",)),
    (400, "error_21610.json", {}, False, ("unsubscribed",)),
    (429, "error_20429.json", {"Retry-After": "17"}, True, ()),
])
def test_twilio_errors_are_mapped(status, name, headers, retryable, flags):
    responses.post(URL, json=doc(name), status=status, headers=headers)
    with pytest.raises(SmsError) as caught:
        twilio().send("+97205551234", "Hi")
    exc = caught.value
    assert exc.retryable is retryable and exc.status == status and exc.code == str(doc(name)["code"])
    assert exc.invalid_number is ("invalid_number" in flags) and exc.unsubscribed is ("unsubscribed" in flags)
    assert doc(name)["message"] in exc.message
    verdict = retry_policy(exc, 1)
    if retryable:
        assert verdict == Retry(17.0, exc.message)  # Twilio's own wait first
    else:
        assert isinstance(verdict, GiveUp) and not verdict.unexpected


@responses.activate
def test_server_errors_and_timeouts_are_retried_and_a_garbled_answer_is_not():
    responses.post(URL, body="<html>bad gateway</html>", status=502)
    with pytest.raises(SmsError) as caught:
        twilio().send("+12015550123", "Hi")
    assert caught.value.retryable and "Twilio 502" in caught.value.message
    assert isinstance(retry_policy(caught.value, 1), Retry)
    responses.replace(responses.POST, URL, body=requests.ConnectTimeout("slow"))
    with pytest.raises(SmsError) as caught:
        twilio().send("+12015550123", "Hi")
    assert caught.value.retryable and "ConnectTimeout" in caught.value.message
    responses.replace(responses.POST, URL, json={"status": "queued"}, status=201)
    with pytest.raises(SmsError, match="without a message sid") as caught:
        twilio().send("+12015550123", "Hi")
    assert not caught.value.retryable
    assert isinstance(retry_policy(caught.value, 8), GiveUp)


def test_an_unknown_provider_is_refused():
    with pytest.raises(SmsError, match="unknown SMS provider 'pigeon'"):
        provider_for({**SETTINGS, "provider": "pigeon"}, Config())


def test_the_local_sink_speaks_the_same_api(tmp_path):
    sink = SmsSink(tmp_path / "sms.jsonl", credentials={SID: TOKEN}).start()
    try:
        assert sink.url.startswith("http://127.0.0.1:")
        sid = twilio(api=sink.url).send("+972525551234", HEBREW * 2)
        (kept,) = read(tmp_path / "sms.jsonl")
        assert kept["sid"] == sid and sid.startswith("SM") and len(sid) == 34
        assert (kept["to"], kept["from"], kept["body"], kept["num_segments"]) == ("+972525551234", "+14155552345",
                                                                                HEBREW * 2, "2")
        listed = requests.get(f"{sink.url}/2010-04-01/Accounts/{SID}/Messages.json", timeout=5).json()
        assert [m["sid"] for m in listed["messages"]] == [sid]
        with pytest.raises(SmsError) as caught:
            twilio({**SETTINGS, "auth_token": "wrong"}, sink.url).send("+972525551234", "Hi")
        assert caught.value.status == 401 and caught.value.code == "20003" and not caught.value.retryable
        sink.unsubscribed.add("+972525551234")
        with pytest.raises(SmsError) as caught:
            twilio(api=sink.url).send("+972525551234", "Hi")
        assert caught.value.unsubscribed
        with pytest.raises(SmsError) as caught:
            twilio(api=sink.url).send("0525551234", "Hi")
        assert caught.value.invalid_number
        assert len(sink.messages) == 1
    finally:
        sink.stop()
