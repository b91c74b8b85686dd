"""The scheduled jobs and the login callback, as Lambda handlers (standard library + boto3 only).

- ``bias.handler``: the pre-market bias (08:45 IST);
- ``report.handler``: the post-market P&L report (16:00 IST);
- ``ops.handler``: start the instance and send the login link, arm/disarm the heartbeat alarm;
- ``login.handler``: the FYERS redirect (a function URL).

Every job asks the static NSE calendar table first and does nothing on a non-session day.
"""
