"""`tfl deploy`, `tfl doctor`, `tfl ssh-allow`, `tfl data sync`, `tfl data eod`: running TFL on AWS."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfl.settings import Settings
from tfl.timeutil import IST

if TYPE_CHECKING:
    from tfl.aws.calendar_table import CalendarTable
    from tfl.aws.data_sync import SyncResult

# A stack update may stop and start the server (user data, instance type): not while it boots,
# trades or runs the end-of-day job, i.e. from the 08:30 start to the 17:00 stop (or a later close).
GUARD_START = 8 * 60 + 30
GUARD_END = 17 * 60
DEFAULT_TEMPLATE = Path("infra/tfl-infrastructure.yaml")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _client(settings: Settings, service: str) -> Any:
    from tfl.aws.clients import client

    return client(service, settings.aws.region)


def fresh_calendar() -> tuple[CalendarTable, dict[str, Any] | None]:
    """The NSE session table as ``tfl deploy`` ships it: generated now from the calendar packages.

    If that fails (a broken calendar package), the packaged table, and None for the content:
    the doctor and the market-hours guard still work, a deploy does not.
    """
    from tfl.aws.calendar_table import CalendarTable, generate_table, load_table

    try:
        data = generate_table()
        return CalendarTable.from_dict(data, "the generated calendar table"), data
    except Exception as exc:  # any failure of the calendar packages: fall back, say so
        sys.stderr.write(
            f"tfl: warning: cannot generate the NSE calendar table ({type(exc).__name__}: {exc}); "
            "using the packaged one\n"
        )
        return load_table(), None


def sync_report(result: SyncResult, bucket: str) -> list[str]:
    """What the operator reads after a sync: counts, symbols without data, objects nobody uses."""
    lines = [f"s3://{bucket}/daily/: {len(result.uploaded)} uploaded, {len(result.unchanged)} unchanged"]
    if result.stray:
        lines.append(f"not in the universe, index or VIX (kept; delete them if unused): {', '.join(result.stray)}")
    if result.missing:
        lines.append(f"no daily data for {', '.join(result.missing)}: tomorrow's bias job cannot read them")
    return lines


def cmd_data_sync(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.aws.data_sync import sync_daily
    from tfl.data.market import load_market

    bucket = args.bucket or settings.aws.data_bucket
    if not bucket:
        raise ValueError("no bucket: pass --bucket or set aws.data_bucket (TFL_AWS__DATA_BUCKET)")
    market = load_market(args.data, settings)
    result = sync_daily(market, settings, _client(settings, "s3"), bucket)
    for line in sync_report(result, bucket):
        _out(line)
    return 0 if not result.missing else 1


def cmd_data_eod(args: argparse.Namespace, settings: Settings) -> int:
    """After the close: top up the data directory from FYERS, then sync the daily bars to S3."""
    from tfl.cli.wiring import alert_channel
    from tfl.live.runtime import log_alert

    alert = alert_channel(settings, log_alert)
    try:
        return _eod(args, settings)
    except Exception as exc:
        alert(
            "ERROR",
            f"TFL end-of-day data update failed ({type(exc).__name__}: {exc}); "
            "tomorrow's bias may be NO_TRADES or leave these symbols out",
        )
        raise


def _eod(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from tfl.aws.data_sync import sync_daily
    from tfl.cli import fyers_cmds as fy
    from tfl.data.loader import read_universe
    from tfl.data.market import load_market
    from tfl.fyers.history import fetch

    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    universe_file = data / "universe.csv"
    s3 = _client(settings, "s3") if settings.aws.data_bucket else None
    if s3 is not None:  # the deploy uploads the universe; the bucket's copy replaces ours
        from tfl.aws.universe_file import download_universe

        download_universe(s3, settings.aws.data_bucket, universe_file)
    if not universe_file.exists():
        raise ValueError(f"no universe file {universe_file}: deploy with --universe, or copy one there")
    names = read_universe(universe_file)
    symbols_csv = data / fy.INSTRUMENTS_FILE
    if not symbols_csv.exists() or time.time() - symbols_csv.stat().st_mtime > 7 * 86400:
        fy.download_symbol_master(settings, symbols_csv, universe_file)
    kit = fy.build_kit(settings, data)
    today = fy.today_ist()
    first = today - dt.timedelta(days=args.days)
    now = int(fy.market_now())
    _, p15 = fetch(kit.rest, kit.symbols, names, "15", first, today, data, now=now)
    index = [settings.bias.benchmark_symbol, settings.bias.vix_symbol]
    _, pd_ = fetch(kit.rest, kit.symbols, list(dict.fromkeys([*names, *index])), "D", first, today, data, now=now)
    problems = p15 + pd_
    _out(f"data directory {data} topped up to {today}" + (f"; {len(problems)} downloads failed" if problems else ""))
    missing: list[str] = []
    if s3 is not None:
        market = load_market(data, settings)
        result = sync_daily(market, settings, s3, settings.aws.data_bucket)
        for line in sync_report(result, settings.aws.data_bucket):
            _out(line)
        missing = result.missing
    failures = [f"{len(problems)} history downloads failed, e.g. {problems[0]}"] if problems else []
    if missing:  # the others are synced; these would silently drop out of the bias
        failures.append(f"no daily data for {len(missing)} symbol(s): {', '.join(missing)}")
    if failures:
        raise ValueError("; ".join(failures))
    return 0


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.aws.calendar_table import table_json
    from tfl.aws.deploy import DeployPlan, artifacts_bucket_name, deploy, template_parameters
    from tfl.aws.package import build_bundle
    from tfl.aws.ssh_access import normalise_cidr

    if not args.template.is_file():
        raise ValueError(f"template {args.template} not found (run tfl deploy from the repository, or pass --template)")
    if args.universe is not None and not args.universe.is_file():
        raise ValueError(f"universe file {args.universe} not found")
    token = None
    if args.git_token_file is not None:
        from tfl.aws.git_credentials import read_token

        token = read_token(args.git_token_file)  # checked before anything reaches AWS
    unpushed = uncommitted_calendar(Path(__file__).resolve().parents[1] / "calendar" / "overrides.json")
    if unpushed and not args.force:
        raise ValueError(
            f"{unpushed} has uncommitted changes: the Lambdas would get a calendar the server (which installs "
            "GitRef from git) does not have. Commit and push it first, or pass --force"
        )
    params: dict[str, str] = {}
    for flag, name in (
        ("instance_type", "InstanceTypeParameter"),
        ("ssh_key", "SSHKeyName"),
        ("git_url", "GitRepositoryUrl"),
        ("git_ref", "GitRef"),
        ("alert_email", "AlertEmail"),
        ("alert_phone", "AlertPhone"),
        ("mode", "TradingMode"),
        ("root_volume_gb", "RootVolumeSize"),
        ("telegram_chat_id", "TelegramChatId"),
    ):
        value = getattr(args, flag)
        if value is not None:
            params[name] = str(value)
    if args.my_ip is not None:
        params["MyIPAddress"] = normalise_cidr(args.my_ip)
    _out("generating the NSE calendar table ...")
    table, calendar = fresh_calendar()
    _guard_market_hours(dt.datetime.now(dt.UTC), args.force, table)
    if calendar is None:
        raise ValueError("cannot deploy without a freshly generated NSE calendar table (see the warning above)")
    cfn = _client(settings, "cloudformation")
    s3 = _client(settings, "s3")
    bucket = args.artifacts_bucket or artifacts_bucket_name(_client(settings, "sts"), settings.aws.region)
    _out("building the Lambda bundle ...")
    bundle = build_bundle(table_json(calendar).encode("utf-8"))
    _out(f"  {len(bundle.files)} files, sha256 {bundle.sha256[:16]}")
    body = args.template.read_text(encoding="utf-8")
    template_params = template_parameters(body)
    if token is not None:
        from tfl.aws.git_credentials import store_token

        if "GitTokenSecret" not in template_params:
            raise ValueError(f"the template {args.template} has no GitTokenSecret parameter: it cannot use a git token")
        stored = store_token(_client(settings, "secretsmanager"), token, args.git_user)
        params["GitTokenSecret"] = stored.secret_name
        _out(f"git token {'stored in the new secret' if stored.created else 'updated in'} {stored.secret_name}")
    if "LimitLambdaConcurrency" in template_params and not _lambda_concurrency_ok(settings):
        params.setdefault("LimitLambdaConcurrency", "false")
        _out("this account's Lambda concurrency quota is below 100: no reserved concurrency")
    plan = DeployPlan(
        args.stack_name or settings.aws.stack_name,
        args.template,
        bucket,
        params,
        args.universe,
        refresh_ami=args.refresh_ami,
    )
    outputs = deploy(
        plan,
        bundle,
        cfn=cfn,
        s3=s3,
        ec2=_client(settings, "ec2"),
        region=settings.aws.region,
        progress=_out,
        template_params=template_params,
        ddb=_client(settings, "dynamodb"),
    )
    _out("")
    _out("stack outputs:")
    for key in sorted(outputs):
        _out(f"  {key:<20} {outputs[key]}")
    if "ElasticIP" in outputs:
        _out(f"whitelist {outputs['ElasticIP']} in the FYERS API dashboard (orders only come from that IP)")
    if "LoginCallbackUrl" in outputs:
        _out(f"set {outputs['LoginCallbackUrl']} as the FYERS app's redirect URI and in the credentials secret")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.aws.doctor import Clients, calendar_expiry, run_checks

    table, _ = fresh_calendar()  # what the next deploy ships, not the checked-in copy
    clients = Clients(
        *(
            _client(settings, s)
            for s in ("cloudformation", "secretsmanager", "ssm", "sns", "scheduler", "ec2", "cloudwatch")
        )
    )
    now = dt.datetime.now(dt.UTC) if args.at is None else args.at
    checks = run_checks(clients, args.stack_name or settings.aws.stack_name, now, table.session)
    checks.append(calendar_expiry(table.last_year, now.astimezone(IST).date()))
    for c in checks:
        _out(f"{c.status:<5} {c.name:<36} {c.detail}")
    failed = [c for c in checks if c.status == "FAIL"]
    _out(f"{len(checks)} checks: {len(failed)} failed, {sum(c.status == 'WARN' for c in checks)} warnings")
    return 1 if failed else 0


def cmd_ssh_allow(args: argparse.Namespace, settings: Settings) -> int:
    from tfl.aws.ssh_access import allow_ssh_from, change_stack_ip, find_group, normalise_cidr

    cidr = normalise_cidr(args.ip)
    ec2 = _client(settings, "ec2")
    if args.direct:
        group = find_group(ec2, args.group_id)
        removed = allow_ssh_from(ec2, group, cidr)
        _out(f"SSH to {group} now allowed from {cidr} only" + (f" (removed {', '.join(removed)})" if removed else ""))
        _out(f"pass --my-ip {cidr} on the next tfl deploy, or CloudFormation restores the old rule")
        return 0
    stack = args.stack_name or settings.aws.stack_name
    # No market-hours guard: the change set is executed only if it edits the security group alone, in place.
    if not change_stack_ip(_client(settings, "cloudformation"), ec2, stack, cidr, _out, poll_seconds=args.poll_seconds):
        _out(f"SSH is already allowed from {cidr}: {stack} has that address (nothing changed)")
        return 0
    _out(f"SSH now allowed from {cidr} only")
    return 0


def uncommitted_calendar(overrides: Path) -> str:
    """The override file's path when git says it differs from the checkout's commit, else ""."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", overrides.name],
            cwd=overrides.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git: nothing to compare with
        return ""
    return str(overrides) if out.returncode == 0 and out.stdout.strip() else ""


def _guard_market_hours(now: dt.datetime, force: bool, table: CalendarTable) -> None:
    """A stack update may stop and start the server: refuse from its 08:30 start to its 17:00 stop unless forced.

    On a day the table cannot tell about (it has expired), every weekday counts: fail closed.
    """
    from tfl.aws.calendar_table import CalendarTableExpired

    ist = now.astimezone(IST)
    try:
        session = table.session(ist.date())
    except CalendarTableExpired:
        trading, end, why = ist.weekday() < 5, GUARD_END, "a weekday the NSE calendar table does not cover"
    else:
        trading, why = session is not None, "a trading day"
        end = GUARD_END if session is None else max(GUARD_END, session.close_minute)
    minute = ist.hour * 60 + ist.minute
    if trading and GUARD_START <= minute < end and not force:
        raise ValueError(
            f"it is {ist:%H:%M} IST on {why}: a stack update can restart the trading server while it trades "
            f"or runs the end-of-day job. Deploy after {end // 60:02d}:{end % 60:02d}, or pass --force"
        )


def _lambda_concurrency_ok(settings: Settings) -> bool:
    """Reserved concurrency needs an account quota of at least 100 (new accounts have 10)."""
    try:
        limit = _client(settings, "lambda").get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    except Exception:  # unknown: keep the template's default
        return True
    return int(limit) >= 100


def add_data_parsers(dsub: Any, add_config: Any) -> None:
    sy = dsub.add_parser("sync", help="upload the daily bars the pre-market bias job reads to S3")
    sy.add_argument("--data", type=Path, required=True)
    sy.add_argument("--bucket", help="default: the aws.data_bucket setting")
    add_config(sy)
    sy.set_defaults(func=_run("cmd_data_sync"))
    eo = dsub.add_parser("eod", help="after the close: fetch the day's bars from FYERS, then sync daily bars to S3")
    eo.add_argument("--data", type=Path, required=True)
    eo.add_argument("--days", type=int, default=400, help="history to seed an empty directory with (default 400)")
    add_config(eo)
    eo.set_defaults(func=_run("cmd_data_eod"))


def _disk_gb(text: str) -> int:
    """The root volume's size: whole GiB from 10 (the AMI's 8 GiB snapshot and room) to 200."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number of GiB") from None
    if not 10 <= n <= 200:
        raise argparse.ArgumentTypeError(f"{n}: expected 10..200 GiB")
    return n


def add_parsers(sub: Any, add_config: Any) -> None:
    dp = sub.add_parser("deploy", help="package the Lambdas, create or update the AWS stack, print its outputs")
    dp.add_argument("--stack-name", help="default: the aws.stack_name setting (TFL-Trading-System-Prod)")
    dp.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    dp.add_argument("--artifacts-bucket", help="where code and templates go (default tfl-artifacts-ACCOUNT-REGION)")
    dp.add_argument("--my-ip", help="your IP (or CIDR) for SSH; required on the first deploy")
    dp.add_argument("--ssh-key", help="EC2 key pair name (empty: no key; use SSM Session Manager)")
    dp.add_argument(
        "--instance-type", help="default t3.large; t4g.small is the cheapest size with room (docs/aws-costs.md)"
    )
    dp.add_argument("--git-url", help="the repository the instance installs TFL from; required on the first deploy")
    dp.add_argument("--git-ref", help="branch, tag or commit (default main)")
    dp.add_argument(
        "--git-token-file",
        type=Path,
        help="a private repository: file holding a read-only token, stored in Secrets Manager (tfl/git_token)",
    )
    dp.add_argument(
        "--git-user", default="x-access-token", help="user name sent with the token (default x-access-token, GitHub)"
    )
    dp.add_argument("--alert-email", help="subscribe this address to TFL-Notifications")
    dp.add_argument("--alert-phone", help="subscribe this phone (E.164, e.g. +919812345678) by SMS; see docs/aws.md")
    dp.add_argument("--mode", choices=("paper", "live"), help="trading mode of the instance (default paper)")
    dp.add_argument(
        "--telegram-chat-id",
        help="alerts to this Telegram chat too (the bot token goes into the credentials secret as "
        "telegram_bot_token; docs/live-runtime.md, Alerts); '' turns it off",
    )
    dp.add_argument(
        "--root-volume-gb",
        type=_disk_gb,
        metavar="GB",
        help="the server's disk, 10-200 GiB (default 20; 10 is enough and cheaper; set it at creation: "
        "a change replaces the instance)",
    )
    dp.add_argument("--universe", type=Path, help="universe CSV (column Symbol) the instance trades")
    dp.add_argument(
        "--refresh-ami",
        action="store_true",
        help="move the server to the latest Amazon Linux image (replaces the instance; default: keep its image)",
    )
    dp.add_argument("--force", action="store_true", help="deploy even during a trading session (08:30-17:00 IST)")
    add_config(dp)
    dp.set_defaults(func=_run("cmd_deploy"))

    dr = sub.add_parser("doctor", help="check a deployed stack: secrets, token, bias, alerts, schedules, instance")
    dr.add_argument("--stack-name")
    dr.add_argument("--at", type=_when, help="pretend it is this time (ISO-8601), e.g. to check a morning")
    add_config(dr)
    dr.set_defaults(func=_run("cmd_doctor"))

    sa = sub.add_parser("ssh-allow", help="replace TFL-SG's SSH rule with your current IP (runbook: SSH access lost)")
    sa.add_argument("--ip", required=True, help="your current public IP or CIDR (e.g. 103.55.21.11)")
    sa.add_argument("--stack-name")
    sa.add_argument(
        "--direct", action="store_true", help="edit the security group through EC2 instead of updating the stack"
    )
    sa.add_argument("--group-id", help="with --direct: default the security group named TFL-SG")
    sa.add_argument("--poll-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    add_config(sa)
    sa.set_defaults(func=_run("cmd_ssh_allow"))


def _when(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected an ISO-8601 time, e.g. 2026-11-26T09:20+05:30") from None
    return t if t.tzinfo else t.replace(tzinfo=IST)


def _run(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from tfl.cli.main import _settings

        return int(globals()[name](args, _settings(args)))

    return run
