"""The FYERS login callback Lambda, end to end against the fake FYERS HTTP server and moto.

The operator's tap is simulated for real: the ops job sends the link by SNS, the test opens
it at the fake FYERS (which redirects with ``auth_code`` and ``state``), and the redirect
becomes the function URL's payload-2.0 event. The code, the token and the app secret must
never appear in a log record, an SNS message or a page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from lambda_helpers import LOGIN_CALLBACK, REGION, Aws, Messages, lambda_env, log_text, record_api_calls

from tfl.aws.lambdas import login, ops
from tfl.aws.lambdas.common import LambdaConfig, ist_today
from tfl.fyers import auth
from tfl.fyers import login as fyers_login

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fyers"))

from fake_fyers import FakeFyers


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFyers]:
    f = FakeFyers(None, dt.date(2024, 5, 16), [])  # type: ignore[arg-type]  # only the login endpoints are used
    f.start()
    yield f
    f.stop()


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
    sns_topic: tuple[Any, str, Messages],
    fyers_secrets: tuple[str, str],
    fake: FakeFyers,
    caplog: pytest.LogCaptureFixture,
) -> Aws:
    caplog.set_level(logging.INFO)  # as in Lambda: botocore's DEBUG lines (request bodies) are off
    caplog.set_level(logging.DEBUG, logger="tfl")
    aws = lambda_env(monkeypatch, sns_topic, fyers_secrets)
    monkeypatch.setenv("TFL_FYERS__API_URL", fake.api_url)
    aws.set_credentials(client_id=fake.client_id, secret_key=fake.secret, redirect_uri=LOGIN_CALLBACK)
    return aws


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def tap(url: str) -> str:
    """Open the login link at (fake) FYERS; the redirect it answers with."""
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.build_opener(_NoRedirect).open(url, timeout=5)
    assert ei.value.code == 302
    return str(ei.value.headers["Location"])


def callback_event(redirect: str, method: str = "GET") -> dict[str, Any]:
    """The function URL's payload (format 2.0) for a browser arriving at ``redirect``."""
    query = urllib.parse.urlsplit(redirect).query
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": query,
        "queryStringParameters": dict(urllib.parse.parse_qsl(query)),
        "requestContext": {"http": {"method": method, "path": "/"}},
    }


def link_from_sns(aws: Aws) -> str:
    out = ops.handler({"action": "link"}, None)
    assert out["status"] == "ok", out
    msg = aws.messages()[-1]
    assert msg["Subject"] == f"TFL: log in to FYERS for {ist_today()}"
    return next(line for line in msg["Message"].splitlines() if line.startswith("http"))


def assert_no_leak(aws: Aws, caplog: pytest.LogCaptureFixture, pages: list[dict[str, Any]], *hidden: str) -> None:
    logs = log_text(caplog)
    messages = json.dumps(aws.messages())
    bodies = json.dumps(pages)
    for value in hidden:
        assert value and value not in logs and value not in messages and value not in bodies


def test_the_daily_login_stores_the_token_once(aws: Aws, fake: FakeFyers, caplog: pytest.LogCaptureFixture) -> None:
    url = link_from_sns(aws)
    assert url.startswith(f"{fake.api_url}/generate-authcode?")
    redirect = tap(url)
    assert redirect.startswith(LOGIN_CALLBACK + "?")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["auth_code"]
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 200 and "Logged in. You can close this tab." in page["body"]
    assert page["headers"]["Referrer-Policy"] == "no-referrer" and page["headers"]["Cache-Control"] == "no-store"
    stored = aws.token_secret_value()
    token = stored["access_token"]
    assert token in fake.tokens  # the token FYERS issued for this code
    assert stored["token_date"] == ist_today().isoformat()
    assert stored["login_state"] == ""  # consumed
    assert aws.messages()[-1]["Subject"] == f"TFL: FYERS login OK for {ist_today()}"

    sent = len(aws.messages())
    again = login.handler(callback_event(redirect), None)  # the same link, replayed
    assert again["statusCode"] == 400 and "no login is pending" in again["body"]
    assert aws.token_secret_value()["access_token"] == token
    assert len(aws.messages()) == sent  # a replay is not the operator's login: logged, no e-mail
    assert any(r.levelno == logging.WARNING and r.getMessage() == "login refused" for r in caplog.records)
    assert_no_leak(aws, caplog, [page, again], code, token, fake.secret)


def test_a_forged_state_is_refused_and_stores_nothing(
    aws: Aws, fake: FakeFyers, caplog: pytest.LogCaptureFixture
) -> None:
    url = link_from_sns(aws)
    pending = aws.token_secret_value()["login_state"]
    forged_url = url.replace(f"state={pending}", "state=forged-state-123")
    redirect = tap(forged_url)
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 400 and "does not match the pending login" in page["body"]
    stored = aws.token_secret_value()
    assert "access_token" not in stored and stored["login_state"] == pending  # a forgery does not use up the link
    assert aws.messages()[-1]["Subject"].startswith("TFL: log in to FYERS")  # the link only: a forgery alerts nobody
    refused = [r for r in caplog.records if r.getMessage() == "login refused"]
    assert refused[0].levelno == logging.WARNING and "does not match" in refused[0].fields["reason"]  # type: ignore[attr-defined]
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["auth_code"]
    assert_no_leak(aws, caplog, [page], code, fake.secret)
    assert pending not in log_text(caplog) and pending not in json.dumps(page)  # the link message has it, by design


def test_a_link_from_another_day_is_refused(aws: Aws, fake: FakeFyers) -> None:
    url = link_from_sns(aws)
    stored = aws.token_secret_value()
    yesterday = (ist_today() - dt.timedelta(days=1)).isoformat()
    aws.set_token_secret(**{**stored, "login_state_date": yesterday})
    page = login.handler(callback_event(tap(url)), None)
    assert page["statusCode"] == 400 and f"the link is from {yesterday}" in page["body"]
    assert "access_token" not in aws.token_secret_value()
    assert len(aws.messages()) == 1  # the link only


def test_fyers_refusing_the_code_is_a_502_and_an_alert(
    aws: Aws, fake: FakeFyers, caplog: pytest.LogCaptureFixture
) -> None:
    link_from_sns(aws)
    state = aws.token_secret_value()["login_state"]
    bogus = "eyJhbGciOiJIUzI1NiJ9.bogus-auth-code.sig"
    page = login.handler(callback_event(f"{LOGIN_CALLBACK}?s=ok&code=200&auth_code={bogus}&state={state}"), None)
    assert page["statusCode"] == 502 and "invalid auth code (code -441, HTTP 400)" in page["body"]
    stored = aws.token_secret_value()
    assert "access_token" not in stored and stored["login_state"] == ""  # good once: ask for a new link
    alert = aws.messages()[-1]
    assert alert["Subject"].startswith("TFL ERROR:") and "-441" in alert["Message"]
    assert_no_leak(aws, caplog, [page], bogus, fake.secret)


def test_a_wrong_app_secret_fails_without_leaking_it(
    aws: Aws, fake: FakeFyers, caplog: pytest.LogCaptureFixture
) -> None:
    aws.set_credentials(client_id=fake.client_id, secret_key="wrong-secret-987", redirect_uri=LOGIN_CALLBACK)
    redirect = tap(link_from_sns(aws))
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 502 and "-371" in page["body"]
    assert "access_token" not in aws.token_secret_value()
    app_hash = fyers_login.app_id_hash(fake.client_id, "wrong-secret-987")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["auth_code"]
    assert_no_leak(aws, caplog, [page], "wrong-secret-987", app_hash, code)


def test_placeholders_and_unreachable_fyers(aws: Aws, fake: FakeFyers, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect = tap(link_from_sns(aws))
    aws.set_credentials(client_id=fake.client_id, secret_key="REPLACE_ME", redirect_uri=LOGIN_CALLBACK)
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 500 and "replace the placeholders in tfl/fyers_credentials" in page["body"]
    assert aws.messages()[-1]["Subject"].startswith("TFL ERROR: TFL: FYERS login for")  # the operator's login failed

    aws.set_credentials(client_id=fake.client_id, secret_key=fake.secret, redirect_uri=LOGIN_CALLBACK)
    redirect = tap(link_from_sns(aws))
    monkeypatch.setenv("TFL_FYERS__API_URL", "http://127.0.0.1:9/api/v3")  # nothing listens there
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 502 and "network failure" in page["body"]
    assert "access_token" not in aws.token_secret_value()


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("s=error&code=-413&message=user+cancelled&state=x", 400, "FYERS reported that the login did not succeed"),
        ("s=ok&code=200&auth_code=abc", 400, "no auth_code or no state"),
        ("s=ok&code=200&state=abc", 400, "no auth_code or no state"),
        ("s=ok&auth_code=a&auth_code=b&state=abc", 400, "no auth_code or no state"),
        ("s=ok&auth_code=abc&state=" + "x" * 300, 400, "too long"),
        ("s=ok&auth_code=abc&state=abc", 400, "no login is pending"),
    ],
)
def test_malformed_callbacks_are_refused_without_an_alert(
    aws: Aws, query: str, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = login.handler(callback_event(f"{LOGIN_CALLBACK}?{query}"), None)
    assert page["statusCode"] == status and reason in page["body"]
    assert "access_token" not in aws.token_secret_value()
    assert aws.messages() == []  # a public address: junk must not e-mail the operator
    (refused,) = [r for r in caplog.records if r.name == "tfl.aws.lambdas.login"]
    assert refused.levelno == logging.WARNING and reason in refused.fields["reason"]  # type: ignore[attr-defined]


def test_the_token_and_its_date_are_one_write(aws: Aws, fake: FakeFyers, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect = tap(link_from_sns(aws))
    calls = record_api_calls(monkeypatch)
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 200
    assert calls.of("secretsmanager").count("PutSecretValue") == 2  # the state consumed, then token and date together
    stored = aws.token_secret_value()
    assert stored["access_token"] in fake.tokens and stored["token_date"] == ist_today().isoformat()


def test_an_event_with_only_query_string_parameters(aws: Aws, fake: FakeFyers) -> None:
    event = callback_event(tap(link_from_sns(aws)))
    del event["rawQueryString"]  # some invokers send only the parsed parameters
    page = login.handler(event, None)
    assert page["statusCode"] == 200 and aws.token_secret_value()["access_token"] in fake.tokens


def test_sns_failure_still_stores_the_token(aws: Aws, fake: FakeFyers, caplog: pytest.LogCaptureFixture) -> None:
    redirect = tap(link_from_sns(aws))
    boto3.client("sns", region_name=REGION).delete_topic(TopicArn=aws.topic_arn)
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 200 and aws.token_secret_value()["access_token"] in fake.tokens
    failed = [r for r in caplog.records if r.getMessage() == "SNS publish failed"]
    assert failed and failed[0].fields["error"] == "NotFound"  # type: ignore[attr-defined]
    (stored,) = [r for r in caplog.records if r.getMessage() == "FYERS login stored"]
    assert stored.fields["notified"] is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("variable", ["TFL_AWS__TOKEN_SECRET", "TFL_AWS__CREDENTIALS_SECRET"])
def test_unset_secrets_variables_are_a_500_and_an_error_log(
    aws: Aws, fake: FakeFyers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str
) -> None:
    redirect = tap(link_from_sns(aws))
    sent = len(aws.messages())
    monkeypatch.delenv(variable)
    page = login.handler(callback_event(redirect), None)
    assert page["statusCode"] == 500 and "see the login function" in page["body"]
    assert variable not in page["body"]  # a public page names nothing of the deployment
    assert "access_token" not in aws.token_secret_value() and len(aws.messages()) == sent
    (failed,) = [r for r in caplog.records if r.getMessage() == "login not possible: secrets"]
    assert failed.levelno == logging.ERROR and f"{variable} is not set" in failed.fields["reason"]  # type: ignore[attr-defined]


class _RefusingWrites:
    """The real Secrets Manager client, refusing every PutSecretValue after the first."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_secret_value(self, **kwargs: Any) -> Any:
        self.puts += 1
        if self.puts > 1:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutSecretValue")
        return self._client.put_secret_value(**kwargs)


def test_a_token_that_cannot_be_stored_is_an_alert(aws: Aws, fake: FakeFyers) -> None:
    redirect = tap(link_from_sns(aws))
    cfg = LambdaConfig.from_environ()
    sm = _RefusingWrites(cfg.client("secretsmanager"))

    class Cfg(LambdaConfig):
        def client(self, service: str) -> Any:
            return sm if service == "secretsmanager" else super().client(service)

    page = login.run(callback_event(redirect), Cfg(cfg.settings, cfg.instance_id, cfg.heartbeat_alarm, cfg.login_url))
    assert page["statusCode"] == 500 and "cannot write (AccessDeniedException)" in page["body"]
    assert sm.puts == 2 and aws.token_secret_value()["login_state"] == ""  # consumed, then the token refused
    alert = aws.messages()[-1]
    assert alert["Subject"].startswith("TFL ERROR: TFL: FYERS login for") and "could not be stored" in alert["Message"]


def test_only_get_is_accepted(aws: Aws) -> None:
    page = login.handler(callback_event(f"{LOGIN_CALLBACK}?auth_code=a&state=b", method="POST"), None)
    assert page["statusCode"] == 405
    assert aws.messages() == []


def test_the_page_escapes_what_it_shows() -> None:
    page = login.page(400, "<b>x</b>", "a <script>alert(1)</script> & b")
    assert "<script>" not in page["body"] and "&lt;script&gt;" in page["body"]
    assert "default-src 'none'" in page["headers"]["Content-Security-Policy"]


# --------------------------------------------------------------------------- tfl.fyers.login


def test_auth_re_exports_the_pure_login_functions() -> None:
    for name in ("LoginError", "app_id_hash", "login_url", "new_state", "parse_redirect", "jwt_expiry"):
        assert getattr(auth, name) is getattr(fyers_login, name)


def test_validate_authcode_against_the_fake(fake: FakeFyers) -> None:
    url = fyers_login.login_url(fake.api_url, fake.client_id, LOGIN_CALLBACK, "st4te")
    code = fyers_login.parse_redirect(tap(url), "st4te")
    payload = fyers_login.validate_authcode(fake.api_url, fyers_login.app_id_hash(fake.client_id, fake.secret), code)
    assert payload["s"] == "ok" and payload["access_token"] in fake.tokens
    with pytest.raises(fyers_login.LoginError, match=r"invalid auth code \(code -441, HTTP 400\)"):
        fyers_login.validate_authcode(fake.api_url, fyers_login.app_id_hash(fake.client_id, fake.secret), code)


class _Echo(BaseHTTPRequestHandler):
    """A server that misbehaves: it echoes what it was sent, or answers something that is not JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/html"):
            data, status = b"<html>gateway error</html>", 502
        else:
            data = json.dumps({"s": "error", "code": -99, "message": f"bad {body['code']} for {body['appIdHash']}"})
            data, status = data.encode(), 400
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_validate_authcode_never_repeats_what_it_sent() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(fyers_login.LoginError) as ei:
            fyers_login.validate_authcode(base, "hash-abc-123", "code-xyz-789")
        assert "code-xyz-789" not in str(ei.value) and "hash-abc-123" not in str(ei.value)
        assert str(ei.value) == "FYERS validate-authcode refused the code: bad *** for *** (code -99, HTTP 400)"
        with pytest.raises(fyers_login.LoginError, match=r"unexpected answer \(HTTP 502\)"):
            fyers_login.validate_authcode(base + "/html", "h", "c")
    finally:
        server.shutdown()
