"""The operations job: start the instance and send the login link; arm and disarm the heartbeat alarm.

Actions (the EventBridge Scheduler's input):

- ``{"action": "start"}`` (08:30 IST): on an NSE session day, start the trading instance and
  send the operator the day's FYERS login link (a fresh random ``state`` is stored in the
  token secret; the login callback accepts it once, today only).
- ``{"action": "link"}``: only send a new login link (after a failed login, from the console).
- ``{"action": "arm"}`` (09:15): on a session day, enable the missing-heartbeat alarm's actions.
- ``{"action": "disarm"}`` (12:35 and 15:35): disable them once the day's session has closed (five
  minutes after its close, so the trader's last heartbeats are in) or when there is none, so a
  stopped trader alarms nobody at night; before that it keeps them, so a short special session
  (12:30 close) and a regular one are both covered by the one schedule.

Past the calendar table's last year nothing starts and a CRITICAL alert says to regenerate it.

The start is safe to retry. EC2's ``InsufficientInstanceCapacity`` is retried a few times with
growing pauses (the instance's disk is in the stack's one zone, so it cannot move); and the
login link goes out once a day however often the start runs (a conditional marker in the
journal table, :mod:`tfl.aws.lambdas.once`), because a second link would void the first.
The explicit ``link`` action always sends a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfl.aws.calendar_table import CalendarTableError, CalendarTableExpired, SessionTimes, load_table
from tfl.aws.clients import aws_code
from tfl.aws.lambdas.common import (
    ConfigError,
    LambdaConfig,
    alert,
    decide,
    entry,
    event_date,
    ist_now,
    publish,
)
from tfl.aws.lambdas.once import OnceMarker, OnceMarkerError
from tfl.aws.notify import SnsNotifier
from tfl.fyers.login import login_url, new_state
from tfl.secrets import SecretError
from tfl.timeutil import IST

log = logging.getLogger("tfl.aws.lambdas.ops")
ACTIONS = ("start", "link", "arm", "disarm")
DISARM_AFTER_CLOSE = dt.timedelta(minutes=5)  # the trader's last heartbeats come just after the close
# EC2 has no capacity for the size in the zone: pauses between the attempts of the start (five
# attempts over 100 s; the function's timeout is 180 s).
CAPACITY_ERRORS = frozenset({"InsufficientInstanceCapacity"})
START_RETRY_PAUSES = (10.0, 20.0, 30.0, 40.0)
Sleep = Callable[[float], None]


def send_login_link(cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date) -> dict[str, Any]:
    """Store a new login state for ``day`` and send the link; problems alert (ERROR)."""
    try:
        store = cfg.secrets()
        client_id = store.get("client_id")
        redirect_uri = store.get("redirect_uri")
        missing = [n for n in ("client_id", "secret_key", "redirect_uri") if store.get(n) is None]
        if missing:
            secret = cfg.settings.aws.credentials_secret
            reason = f"replace the placeholders in {secret} ({', '.join(missing)}): no FYERS login link today"
            decide(log, "login link not sent: placeholders", logging.ERROR, session=day.isoformat(), missing=missing)
            alert(notifier, "ERROR", reason)
            return {"link": False, "reason": reason}
        assert client_id is not None and redirect_uri is not None  # checked above
        state = new_state()
        # one write: the callback never sees a state without its day
        store.put_many({"login_state": state, "login_state_date": day.isoformat()})
    except (ConfigError, SecretError) as exc:
        decide(log, "login link not sent", logging.ERROR, session=day.isoformat(), reason=str(exc))
        alert(notifier, "ERROR", f"TFL: no FYERS login link for {day}: {exc}")
        return {"link": False, "reason": str(exc)}
    url = login_url(cfg.settings.fyers.api_url, client_id, redirect_uri, state)
    lines = [
        f"Log in to FYERS for the {day} session (one tap, today only):",
        "",
        url,
        "",
        "After the login the page says 'Logged in'; the trader picks the token up by itself.",
    ]
    callback = cfg.login_url
    if callback and redirect_uri.rstrip("/") != callback.rstrip("/"):
        lines += [
            "",
            f"Note: redirect_uri in {cfg.settings.aws.credentials_secret} is not the login callback ({callback}); "
            "set it (and the FYERS app's redirect URL) to the callback, or paste the redirect into `tfl auth login`.",
        ]
        decide(log, "redirect_uri is not the login callback", logging.WARNING, callback=callback)
    published = publish(notifier, f"TFL: log in to FYERS for {day}", "\n".join(lines))
    if not published:  # no link, no login, no trading: the caller's result is an error
        reason = "the login link could not be sent by SNS: use ops action 'link' again, or `tfl auth login`"
        decide(log, "login link not delivered", logging.ERROR, session=day.isoformat(), reason=reason)
        return {"link": False, "published": False, "reason": reason}
    decide(log, "login link sent", session=day.isoformat(), notified=published)
    return {"link": True, "published": published}


def _session(notifier: SnsNotifier | None, day: dt.date, action: str) -> tuple[SessionTimes | None, str]:
    """Today's session, or (None, error) when the calendar table cannot say (CRITICAL when expired)."""
    try:
        return load_table().session(day), ""
    except CalendarTableError as exc:
        level = "CRITICAL" if isinstance(exc, CalendarTableExpired) else "ERROR"
        decide(log, f"{action}: calendar table unusable", logging.getLevelName(level), reason=str(exc))
        if action == "start":  # one alert a day is enough: arm follows start
            alert(notifier, level, f"TFL did not start for {day}: {exc}")
        return None, str(exc)


def start_instance(cfg: LambdaConfig, day: dt.date, sleep: Sleep) -> str:
    """Start the trading instance, retrying EC2's capacity shortage; the reason it did not start, or ""."""
    try:
        instance = cfg.require(cfg.instance_id, "TFL_INSTANCE_ID")
    except ConfigError as exc:
        return str(exc)
    ec2 = cfg.client("ec2")
    for attempt in range(len(START_RETRY_PAUSES) + 1):
        try:
            ec2.start_instances(InstanceIds=[instance])
        except (ClientError, BotoCoreError) as exc:
            code = aws_code(exc)
            if code not in CAPACITY_ERRORS:
                return f"start_instances failed ({code})"
            if attempt == len(START_RETRY_PAUSES):
                waited = sum(START_RETRY_PAUSES)
                return (
                    f"EC2 has no capacity for the instance's size in its zone ({code}, {attempt + 1} attempts over "
                    f"{waited:.0f} s). Start it by hand when capacity returns: aws ec2 start-instances "
                    f"--instance-ids {instance}; if it lasts, change the size after the session "
                    "(tfl deploy --instance-type ...)"
                )
            pause = START_RETRY_PAUSES[attempt]
            decide(log, "no EC2 capacity: retrying the start", logging.WARNING, session=day.isoformat(), pause=pause)
            sleep(pause)
        else:
            decide(log, "instance started", session=day.isoformat(), instance=instance, attempts=attempt + 1)
            return ""
    raise AssertionError("unreachable: the loop returns")  # pragma: no cover


def once_marker(cfg: LambdaConfig, day: dt.date) -> OnceMarker | None:
    """The marker of the day's login link, or None (logged) when no journal table is configured."""
    table = cfg.settings.aws.journal_table
    if not table:
        decide(log, "no journal table: the login link is not guarded against a retry", logging.WARNING)
        return None
    return OnceMarker(cfg.client("dynamodb"), table, f"start-link:{day.isoformat()}")


def send_link_once(cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The day's login link, unless a run of today's start already sent it (or is sending it).

    A marker that cannot be used sends the link anyway (WARNING): two links are better than none.
    """
    marker = once_marker(cfg, day)
    if marker is not None:
        try:
            claim = marker.claim(now)
        except OnceMarkerError as exc:
            decide(log, "login link marker unavailable: sending anyway", logging.WARNING, reason=str(exc))
            marker = None
        else:
            if not claim.ours:
                decide(log, "login link already sent today: not sent again", session=day.isoformat(), found=claim.found)
                return {"link": True, "duplicate": True}
    link = send_login_link(cfg, notifier, day)
    if marker is not None:
        try:
            marker.finish(now, succeeded=bool(link["link"]))
        except OnceMarkerError as exc:
            decide(log, "login link marker not recorded", logging.WARNING, reason=str(exc))
    return link


def start(
    cfg: LambdaConfig,
    notifier: SnsNotifier | None,
    day: dt.date,
    now: dt.datetime | None = None,
    sleep: Sleep = time.sleep,
) -> dict[str, Any]:
    session, error = _session(notifier, day, "start")
    if error:
        return {"status": "error", "action": "start", "session": day.isoformat(), "reason": error}
    if session is None:
        decide(log, "no NSE session today: instance not started", session=day.isoformat())
        return {"status": "skipped", "action": "start", "session": day.isoformat(), "reason": "no NSE session"}
    out: dict[str, Any] = {"status": "ok", "action": "start", "session": day.isoformat(), "started": False}
    reason = start_instance(cfg, day, sleep)
    if reason:
        decide(log, "instance not started", logging.ERROR, session=day.isoformat(), reason=reason)
        alert(notifier, "CRITICAL", f"TFL: the trading instance did not start for {day}: {reason}")
        out.update(status="error", reason=reason)
    else:
        out["started"] = True
    link = send_link_once(cfg, notifier, day, now or dt.datetime.now(dt.UTC))
    out["link"] = link["link"]
    if link.get("duplicate"):
        out["duplicate_link"] = True
    if not link["link"]:
        out["status"] = "error"
        out.setdefault("reason", link["reason"])
    return out


def arm(cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date) -> dict[str, Any]:
    session, error = _session(notifier, day, "arm")
    if error:
        return {"status": "error", "action": "arm", "session": day.isoformat(), "reason": error}
    if session is None:
        decide(log, "no NSE session today: heartbeat alarm not armed", session=day.isoformat())
        return {"status": "skipped", "action": "arm", "session": day.isoformat(), "reason": "no NSE session"}
    return _alarm_actions(cfg, notifier, day, enable=True)


def disarm(cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date, now: dt.datetime | None) -> dict[str, Any]:
    """Disable the alarm's actions unless today's session is still open (or closed under five
    minutes ago): disarming a running session would hide a trader that dies in its last hours."""
    session, error = _session(notifier, day, "disarm")
    if session is not None:
        close = dt.datetime.combine(session.date, dt.time(session.close_minute // 60, session.close_minute % 60), IST)
        current = ist_now(now)
        if current < close + DISARM_AFTER_CLOSE:
            decide(
                log,
                "still open: kept armed",
                session=day.isoformat(),
                close=close.strftime("%H:%M"),
                now=current.strftime("%H:%M"),
            )
            return {
                "status": "skipped",
                "action": "disarm",
                "session": day.isoformat(),
                "reason": "still open: kept armed",
            }
    # no session, a closed one, or a calendar that cannot say (nothing was armed past the table): disarm
    out = _alarm_actions(cfg, notifier, day, enable=False)
    if error and out["status"] == "ok":
        out["note"] = error
    return out


def _alarm_actions(cfg: LambdaConfig, notifier: SnsNotifier | None, day: dt.date, *, enable: bool) -> dict[str, Any]:
    action = "arm" if enable else "disarm"
    try:
        alarm = cfg.require(cfg.heartbeat_alarm, "TFL_HEARTBEAT_ALARM")
        cw = cfg.client("cloudwatch")
        if enable:
            # The alarm sits in ALARM overnight (missing data counts as breaching) and actions only
            # fire on a change of state: reset it to OK first, so a trader that never sends a
            # heartbeat today moves it to ALARM again and the operator hears about it.
            cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="armed for today's session by the ops job")
            cw.enable_alarm_actions(AlarmNames=[alarm])
        else:
            cw.disable_alarm_actions(AlarmNames=[alarm])
    except (ConfigError, ClientError, BotoCoreError) as exc:
        reason = str(exc) if isinstance(exc, ConfigError) else f"{action} failed ({aws_code(exc)})"
        decide(log, f"heartbeat alarm {action} failed", logging.ERROR, session=day.isoformat(), reason=reason)
        alert(notifier, "ERROR", f"TFL: could not {action} the heartbeat alarm: {reason}")
        return {"status": "error", "action": action, "session": day.isoformat(), "reason": reason}
    decide(log, f"heartbeat alarm {'armed' if enable else 'disarmed'}", session=day.isoformat(), alarm=alarm)
    return {"status": "ok", "action": action, "session": day.isoformat(), "alarm": alarm}


def run(
    event: dict[str, Any], cfg: LambdaConfig, now: dt.datetime | None = None, sleep: Sleep = time.sleep
) -> dict[str, Any]:
    notifier = cfg.notifier()
    action = event.get("action")
    try:
        day = event_date(event, now)
    except ValueError as exc:
        decide(log, "ops not run: bad event", logging.ERROR, reason=str(exc))
        alert(notifier, "ERROR", f"TFL ops job: {exc}")
        return {"status": "error", "action": str(action), "reason": str(exc)}
    if action == "start":
        return start(cfg, notifier, day, now, sleep)
    if action == "link":
        link = send_login_link(cfg, notifier, day)
        return {"status": "ok" if link["link"] else "error", "action": "link", "session": day.isoformat(), **link}
    if action == "arm":
        return arm(cfg, notifier, day)
    if action == "disarm":
        return disarm(cfg, notifier, day, now)
    reason = f"unknown action {str(action)[:40]!r} (expected one of {', '.join(ACTIONS)})"
    decide(log, "ops: unknown action", logging.ERROR, reason=reason)
    alert(notifier, "ERROR", f"TFL ops job: {reason}")
    return {"status": "error", "action": str(action)[:40], "reason": reason}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler: start 08:30, arm 09:15, disarm 12:35 and 15:35 IST)."""
    return entry("ops", log, run, event)  # a missed start means no trading today: never die silently
