"""`tfl doctor`: is the deployed system ready to trade today?

Each check reads the live AWS state (never a cached idea of it) and says PASS, WARN or
FAIL with the fix. The times that matter are IST and come from the day's own session
(special and short sessions included): a token or a bias record is only expected once its
morning step has run. A check that meets something unexpected (a secret that is valid JSON
but not an object, say) reports FAIL under its own name; the other checks still run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.calendar_table import CalendarTableExpired, SessionTimes, next_year_missing
from tfl.aws.clients import aws_code
from tfl.aws.secrets_store import is_placeholder
from tfl.timeutil import IST

SCHEDULE_NAMES = (
    "TFL-Start",
    "TFL-PreMarketBias",
    "TFL-PostMarketReport",
    "TFL-Stop",
    "TFL-Start-Weekend",
    "TFL-PreMarketBias-Weekend",
    "TFL-PostMarketReport-Weekend",
    "TFL-Stop-Weekend",
    "TFL-ArmHeartbeatAlarm",
    "TFL-DisarmHeartbeatAlarm",
)
CREDENTIAL_FIELDS = ("client_id", "secret_key", "redirect_uri")
INSTANCE_UP = 8 * 60 + 35  # five minutes after the 08:30 start schedule
INSTANCE_DOWN = 17 * 60  # the stop schedule (the end-of-day job runs before it)
BIAS_DUE = 8 * 60 + 45
TOKEN_LEAD = 5  # minutes before the open by which the day's token must exist
HEARTBEAT_GRACE = 5  # minutes after the open before the first heartbeat is due
HEARTBEAT_MAX_AGE = 10  # minutes
HEARTBEAT_PERIOD = 60  # seconds; a datapoint's Timestamp is the START of its period
HEARTBEAT_LOOKBACK = dt.timedelta(hours=23)  # 1,380 one-minute points: under the API's 1,440 per call

log = logging.getLogger("tfl.aws.doctor")

# The day's session (None: no session), raising CalendarTableExpired when the table cannot tell.
SessionOf = Callable[[dt.date], SessionTimes | None]


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, WARN, FAIL
    detail: str


@dataclass
class Clients:
    cfn: Any
    secrets: Any
    ssm: Any
    sns: Any
    scheduler: Any
    ec2: Any
    cloudwatch: Any


class _UnusableError(ValueError):
    """A secret or parameter that cannot be used; the message says why, never its content."""


def _guarded(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """One check's result; an unexpected error becomes a FAIL line naming the check, never a traceback."""
    try:
        got = check()
    except _UnusableError as exc:
        return [Check(name, "FAIL", str(exc))]
    except Exception as exc:  # a surprising answer must not hide the other checks
        log.warning("doctor check failed unexpectedly", extra={"fields": {"check": name, "error": type(exc).__name__}})
        return [Check(name, "FAIL", f"the check could not complete ({type(exc).__name__}): check it by hand")]
    return got if isinstance(got, list) else [got]


def run_checks(clients: Clients, stack_name: str, now: dt.datetime, session_of: SessionOf) -> list[Check]:
    """All checks; ``session_of`` is the calendar table's ``session`` (see :data:`SessionOf`)."""
    out: list[Check] = []
    ist = now.astimezone(IST)
    today = ist.date()
    minute = ist.hour * 60 + ist.minute
    try:
        stack = clients.cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError, IndexError, KeyError) as exc:
        return [Check("stack", "FAIL", f"stack {stack_name} not readable ({aws_code(exc)}): deploy it (tfl deploy)")]
    status = stack["StackStatus"]
    good = status.endswith("_COMPLETE") and "ROLLBACK" not in status and "DELETE" not in status
    out.append(Check("stack", "PASS" if good else "FAIL", f"{stack_name} is {status}"))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    try:
        session = session_of(today)
    except CalendarTableExpired:
        session = None
        out.append(
            Check(
                "calendar",
                "FAIL",
                "no NSE calendar table for today: tfl calendar add-year (NSE's circular), then tfl deploy",
            )
        )
    else:
        what = "not a session day" if session is None else _session_text(session)
        out.append(Check("calendar", "PASS", f"{today} is {what}"))

    out.extend(_guarded("credentials", lambda: _credentials(clients, outputs)))
    out.extend(_guarded("token", lambda: _token(clients, outputs, today, minute, session)))
    out.extend(_guarded("bias", lambda: _bias(clients, outputs, today, minute, session)))
    out.extend(_guarded("alerts", lambda: _subscription(clients, outputs)))
    out.extend(_guarded("schedules", lambda: _schedules(clients)))
    out.extend(_guarded("instance", lambda: _instance(clients, outputs, minute, session)))
    out.extend(_guarded("heartbeat", lambda: _heartbeat(clients, now, minute, session)))
    if outputs.get("ElasticIP"):
        out.append(Check("static IP", "PASS", f"{outputs['ElasticIP']}: it must be whitelisted in the FYERS app"))
    return out


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _session_text(s: SessionTimes) -> str:
    return f"a session day ({_hhmm(s.open_minute)}-{_hhmm(s.close_minute)}{', ' + s.note if s.note else ''})"


def instance_window(session: SessionTimes | None) -> tuple[int, int] | None:
    """IST minutes in which the server must run: from the morning start until the 17:00 stop or a later close."""
    if session is None:
        return None
    return INSTANCE_UP, max(INSTANCE_DOWN, session.close_minute)


def heartbeat_window(session: SessionTimes | None) -> tuple[int, int] | None:
    """IST minutes in which the trader must beat: from just after the session's open to its close."""
    if session is None:
        return None
    return session.open_minute + HEARTBEAT_GRACE, session.close_minute


def _within(window: tuple[int, int] | None, minute: int) -> bool:
    return window is not None and window[0] <= minute < window[1]


def calendar_expiry(last_year: int, today: dt.date) -> Check:
    """The static NSE table fails closed after its last year: warn from 1 December (see
    :func:`tfl.aws.calendar_table.next_year_missing`), fail after it."""
    end = dt.date(last_year, 12, 31)
    left = (end - today).days
    how = f"tfl calendar add-year --year {last_year + 1} (NSE's circular), commit, push, tfl deploy"
    if left < 0:
        return Check("calendar table", "FAIL", f"ended {end}: the system will not start; {how}")
    if next_year_missing(last_year, today):
        return Check("calendar table", "WARN", f"ends {end} ({left} days), no {last_year + 1} holidays yet: {how}")
    return Check("calendar table", "PASS", f"covers sessions up to {end}")


def _json_object(text: str | None, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise _UnusableError(f"{what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise _UnusableError(f"{what} is JSON but not an object: store a JSON object there")
    return data


def _secret(c: Clients, name: str) -> dict[str, Any]:
    try:
        text = c.secrets.get_secret_value(SecretId=name).get("SecretString")
    except (ClientError, BotoCoreError) as exc:
        raise _UnusableError(f"secret {name} unreadable ({aws_code(exc)})") from None
    return _json_object(text, f"secret {name}")


def _credentials(c: Clients, outputs: dict[str, str]) -> Check:
    name = outputs.get("CredentialsSecret", "tfl/fyers_credentials")
    data = _secret(c, name)
    not_text = [k for k in CREDENTIAL_FIELDS if data.get(k) is not None and not isinstance(data[k], str)]
    if not_text:
        return Check("credentials", "FAIL", f"in {name}, {', '.join(not_text)} must be a JSON string")
    left = [k for k in CREDENTIAL_FIELDS if is_placeholder(data.get(k))]
    if left:
        return Check("credentials", "FAIL", f"replace the placeholders in {name}: {', '.join(left)}")
    callback = outputs.get("LoginCallbackUrl")
    if callback and data.get("redirect_uri") != callback:
        return Check("credentials", "WARN", f"redirect_uri in {name} is not the login callback URL {callback}")
    return Check("credentials", "PASS", f"{name} is filled in")


def _token(c: Clients, outputs: dict[str, str], today: dt.date, minute: int, session: SessionTimes | None) -> Check:
    name = outputs.get("TokenSecret", "tfl/fyers_access_token")
    data = _secret(c, name)
    issued = data.get("token_date")
    token = data.get("access_token")
    if issued == today.isoformat() and isinstance(token, str) and not is_placeholder(token):
        return Check("token", "PASS", f"a FYERS token issued today ({issued})")
    if session is None:
        return Check("token", "PASS", f"no token needed today (last issued {issued or 'never'})")
    level = "FAIL" if minute >= session.open_minute - TOKEN_LEAD else "WARN"
    return Check("token", level, f"no FYERS token for today (last {issued or 'never'}): tap today's login link")


def _bias(c: Clients, outputs: dict[str, str], today: dt.date, minute: int, session: SessionTimes | None) -> Check:
    name = outputs.get("BiasParameter", "/tfl/bias")
    try:
        text = c.ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        return Check("bias", "FAIL", f"parameter {name} unreadable ({aws_code(exc)})")
    record = _json_object(text, f"parameter {name}")
    dated = record.get("session")
    if dated == today.isoformat():
        if record.get("provisional") is True:
            return Check(
                "bias", "FAIL", f"today's record is provisional, the job is retrying: {record.get('reason', '')}"
            )
        return Check("bias", "PASS", f"{record.get('bias')} for today ({record.get('reason', '')})")
    if session is None or minute < BIAS_DUE:
        return Check("bias", "PASS", f"latest record is for {dated} (today's comes at 08:45 on session days)")
    return Check("bias", "FAIL", f"the bias record is dated {dated}, not today: the trader will not trade (NO_TRADES)")


def _subscription(c: Clients, outputs: dict[str, str]) -> Check:
    """Alerts reach the operator only through a confirmed e-mail subscription (other protocols do not count)."""
    topic = outputs.get("TopicArn")
    if not topic:
        return Check("alerts", "FAIL", "the stack has no TopicArn output")
    try:
        subs = [
            s
            for page in c.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            for s in page.get("Subscriptions", [])
        ]
    except (ClientError, BotoCoreError) as exc:
        return Check("alerts", "FAIL", f"topic unreadable ({aws_code(exc)})")
    email = [s for s in subs if s.get("Protocol") == "email"]
    confirmed = [s for s in email if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    if confirmed:
        return Check("alerts", "PASS", f"{len(confirmed)} confirmed e-mail subscription(s)")
    if email:
        return Check("alerts", "FAIL", "the e-mail subscription is not confirmed: click the link in AWS's e-mail")
    return Check("alerts", "FAIL", "no e-mail subscription to the alerts topic (deploy with --alert-email)")


def _schedules(c: Clients) -> list[Check]:
    try:
        found: dict[str, str] = {}
        for page in c.scheduler.get_paginator("list_schedules").paginate(NamePrefix="TFL-"):
            for item in page.get("Schedules", []):
                found[item["Name"]] = str(item.get("State"))
    except (ClientError, BotoCoreError) as exc:
        return [Check("schedules", "FAIL", f"cannot list the schedules ({aws_code(exc)})")]
    out = []
    for name in SCHEDULE_NAMES:
        state = found.get(name)
        if state is None:
            out.append(Check(f"schedule {name}", "FAIL", "missing: redeploy the stack"))
        else:
            out.append(Check(f"schedule {name}", "PASS" if state == "ENABLED" else "FAIL", state))
    return out


def _instance(c: Clients, outputs: dict[str, str], minute: int, session: SessionTimes | None) -> Check:
    iid = outputs.get("InstanceId")
    if not iid:
        return Check("instance", "FAIL", "the stack has no InstanceId output")
    try:
        res = c.ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        state = res[0]["Instances"][0]["State"]["Name"]
    except (ClientError, BotoCoreError, IndexError, KeyError) as exc:
        return Check("instance", "FAIL", f"{iid} unreadable ({aws_code(exc)})")
    window = instance_window(session)
    if window is not None and window[0] <= minute < window[1] and state != "running":
        return Check("instance", "FAIL", f"{iid} is {state}; it must run {_hhmm(window[0])}-{_hhmm(window[1])} today")
    return Check("instance", "PASS", f"{iid} is {state}")


def _heartbeat(c: Clients, now: dt.datetime, minute: int, session: SessionTimes | None) -> Check:
    try:
        stats = c.cloudwatch.get_metric_statistics(
            Namespace="TFL",
            MetricName="Heartbeat",
            StartTime=now - HEARTBEAT_LOOKBACK,
            EndTime=now,
            Period=HEARTBEAT_PERIOD,
            Statistics=["Sum"],
        )["Datapoints"]
    except (ClientError, BotoCoreError) as exc:
        return Check("heartbeat", "WARN", f"metrics unreadable ({aws_code(exc)})")
    period = dt.timedelta(seconds=HEARTBEAT_PERIOD)  # the last beat came before its period's end
    last = max((p["Timestamp"] + period for p in stats if p.get("Sum", 0) > 0), default=None)
    in_market = _within(heartbeat_window(session), minute)
    if last is None:
        hours = HEARTBEAT_LOOKBACK.total_seconds() / 3600
        return Check("heartbeat", "FAIL" if in_market else "PASS", f"no heartbeat in the last {hours:.0f} hours")
    age = max(0.0, (now - last).total_seconds() / 60)
    if in_market and age > HEARTBEAT_MAX_AGE:
        return Check("heartbeat", "FAIL", f"last heartbeat {age:.0f} minutes ago: is the trader running?")
    return Check("heartbeat", "PASS", f"last heartbeat {age:.0f} minutes ago")
