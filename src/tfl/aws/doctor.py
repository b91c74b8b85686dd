"""`tfl doctor`: is the deployed system ready to trade today?

Each check reads the live AWS state (never a cached idea of it) and says PASS, WARN or
FAIL with the fix. The times that matter are IST: a token or a bias record is only
expected once its morning step has run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.secrets_store import is_placeholder

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
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


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


def run_checks(
    clients: Clients,
    stack_name: str,
    now: dt.datetime,
    is_session: Callable[[dt.date], bool | None],
) -> list[Check]:
    """All checks; ``is_session`` returns None when the calendar cannot tell (table expired)."""
    out: list[Check] = []
    today = now.astimezone(IST).date()
    minute = now.astimezone(IST).hour * 60 + now.astimezone(IST).minute
    try:
        stack = clients.cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        return [Check("stack", "FAIL", f"stack {stack_name} not readable ({_aws_error(exc)}): deploy it (tfl deploy)")]
    status = stack["StackStatus"]
    good = status.endswith("_COMPLETE") and "ROLLBACK" not in status and "DELETE" not in status
    out.append(Check("stack", "PASS" if good else "FAIL", f"{stack_name} is {status}"))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    session = is_session(today)
    if session is None:
        out.append(Check("calendar", "FAIL", "the NSE calendar table has no entry for today: regenerate (tfl deploy)"))
    else:
        out.append(Check("calendar", "PASS", f"{today} is {'a session day' if session else 'not a session day'}"))

    out.append(_credentials(clients, outputs))
    out.append(_token(clients, outputs, today, minute, bool(session)))
    out.append(_bias(clients, outputs, today, minute, bool(session)))
    out.append(_subscription(clients, outputs))
    out.extend(_schedules(clients))
    out.append(_instance(clients, outputs, minute, bool(session)))
    out.append(_heartbeat(clients, now, minute, bool(session)))
    if outputs.get("ElasticIP"):
        out.append(Check("static IP", "PASS", f"{outputs['ElasticIP']}: it must be whitelisted in the FYERS app"))
    return out


def calendar_expiry(last_year: int, today: dt.date, warn_days: int = 45) -> Check:
    """The static NSE table fails closed after its last year: warn well before that."""
    end = dt.date(last_year, 12, 31)
    left = (end - today).days
    if left < 0:
        return Check("calendar table", "FAIL", f"ended {end}: the system will not start; regenerate it (tfl deploy)")
    if left <= warn_days:
        return Check(
            "calendar table",
            "WARN",
            f"ends {end} ({left} days): upgrade pandas_market_calendars once NSE's {last_year + 1} holidays are "
            "published, then tfl deploy (or nothing trades from January)",
        )
    return Check("calendar table", "PASS", f"covers sessions up to {end}")


def _credentials(c: Clients, outputs: dict[str, str]) -> Check:
    name = outputs.get("CredentialsSecret", "tfl/fyers_credentials")
    try:
        data = json.loads(c.secrets.get_secret_value(SecretId=name).get("SecretString") or "{}")
    except (ClientError, BotoCoreError, json.JSONDecodeError) as exc:
        return Check("credentials", "FAIL", f"secret {name} unreadable ({_aws_error(exc)})")
    left = [k for k in ("client_id", "secret_key", "redirect_uri") if is_placeholder(data.get(k))]
    if left:
        return Check("credentials", "FAIL", f"replace the placeholders in {name}: {', '.join(left)}")
    callback = outputs.get("LoginCallbackUrl")
    if callback and data.get("redirect_uri") != callback:
        return Check("credentials", "WARN", f"redirect_uri in {name} is not the login callback URL {callback}")
    return Check("credentials", "PASS", f"{name} is filled in")


def _token(c: Clients, outputs: dict[str, str], today: dt.date, minute: int, session: bool) -> Check:
    name = outputs.get("TokenSecret", "tfl/fyers_access_token")
    try:
        data = json.loads(c.secrets.get_secret_value(SecretId=name).get("SecretString") or "{}")
    except (ClientError, BotoCoreError, json.JSONDecodeError) as exc:
        return Check("token", "FAIL", f"secret {name} unreadable ({_aws_error(exc)})")
    issued = data.get("token_date")
    if issued == today.isoformat() and not is_placeholder(data.get("access_token")):
        return Check("token", "PASS", f"a FYERS token issued today ({issued})")
    if not session:
        return Check("token", "PASS", f"no token needed today (last issued {issued or 'never'})")
    level = "FAIL" if minute >= 9 * 60 + 10 else "WARN"
    return Check("token", level, f"no FYERS token for today (last {issued or 'never'}): tap today's login link")


def _bias(c: Clients, outputs: dict[str, str], today: dt.date, minute: int, session: bool) -> Check:
    name = outputs.get("BiasParameter", "/tfl/bias")
    try:
        text = c.ssm.get_parameter(Name=name)["Parameter"]["Value"]
        record = json.loads(text)
    except (ClientError, BotoCoreError, json.JSONDecodeError, KeyError) as exc:
        return Check("bias", "FAIL", f"parameter {name} unreadable ({_aws_error(exc)})")
    dated = record.get("session")
    if dated == today.isoformat():
        return Check("bias", "PASS", f"{record.get('bias')} for today ({record.get('reason', '')})")
    if not session or minute < 8 * 60 + 45:
        return Check("bias", "PASS", f"latest record is for {dated} (today's comes at 08:45 on session days)")
    return Check("bias", "FAIL", f"the bias record is dated {dated}, not today: the trader will not trade (NO_TRADES)")


def _subscription(c: Clients, outputs: dict[str, str]) -> Check:
    topic = outputs.get("TopicArn")
    if not topic:
        return Check("alerts", "FAIL", "the stack has no TopicArn output")
    try:
        subs = c.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    except (ClientError, BotoCoreError) as exc:
        return Check("alerts", "FAIL", f"topic unreadable ({_aws_error(exc)})")
    confirmed = [s for s in subs if s.get("SubscriptionArn", "").startswith("arn:")]
    pending = [s for s in subs if s.get("SubscriptionArn") == "PendingConfirmation"]
    if confirmed:
        return Check("alerts", "PASS", f"{len(confirmed)} confirmed subscription(s)")
    if pending:
        return Check("alerts", "FAIL", "the e-mail subscription is not confirmed: click the link AWS sent")
    return Check("alerts", "FAIL", "nobody is subscribed to the alerts topic (deploy with --alert-email)")


def _schedules(c: Clients) -> list[Check]:
    try:
        found: dict[str, str] = {}
        for page in c.scheduler.get_paginator("list_schedules").paginate(NamePrefix="TFL-"):
            for item in page.get("Schedules", []):
                found[item["Name"]] = str(item.get("State"))
    except (ClientError, BotoCoreError) as exc:
        return [Check("schedules", "FAIL", f"cannot list the schedules ({_aws_error(exc)})")]
    out = []
    for name in SCHEDULE_NAMES:
        state = found.get(name)
        if state is None:
            out.append(Check(f"schedule {name}", "FAIL", "missing: redeploy the stack"))
        else:
            out.append(Check(f"schedule {name}", "PASS" if state == "ENABLED" else "FAIL", state))
    return out


def _instance(c: Clients, outputs: dict[str, str], minute: int, session: bool) -> Check:
    iid = outputs.get("InstanceId")
    if not iid:
        return Check("instance", "FAIL", "the stack has no InstanceId output")
    try:
        res = c.ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        state = res[0]["Instances"][0]["State"]["Name"]
    except (ClientError, BotoCoreError, IndexError, KeyError) as exc:
        return Check("instance", "FAIL", f"{iid} unreadable ({_aws_error(exc)})")
    should_run = session and 8 * 60 + 35 <= minute < 17 * 60
    if should_run and state != "running":
        return Check("instance", "FAIL", f"{iid} is {state} during trading hours")
    return Check("instance", "PASS", f"{iid} is {state}")


def _heartbeat(c: Clients, now: dt.datetime, minute: int, session: bool) -> Check:
    try:
        stats = c.cloudwatch.get_metric_statistics(
            Namespace="TFL",
            MetricName="Heartbeat",
            StartTime=now - dt.timedelta(hours=24),
            EndTime=now,
            Period=300,
            Statistics=["Sum"],
        )["Datapoints"]
    except (ClientError, BotoCoreError) as exc:
        return Check("heartbeat", "WARN", f"metrics unreadable ({_aws_error(exc)})")
    last = max((p["Timestamp"] for p in stats if p.get("Sum", 0) > 0), default=None)
    in_market = session and 9 * 60 + 20 <= minute < 15 * 60 + 30
    if last is None:
        return Check("heartbeat", "FAIL" if in_market else "PASS", "no heartbeat in the last 24 hours")
    age = (now - last).total_seconds() / 60
    if in_market and age > 10:
        return Check("heartbeat", "FAIL", f"last heartbeat {age:.0f} minutes ago: is the trader running?")
    return Check("heartbeat", "PASS", f"last heartbeat {age:.0f} minutes ago")
