"""`dmsctl`'s arguments and its exit: every failure ends in one line on stderr (and the reasons of
a refusal, one a line) with the exit code of dmsctl/errors.py, never a traceback."""

from __future__ import annotations

import argparse
import sys

from . import VERSION, commands, config, output
from .client import Api
from .errors import EXIT_CODES, OK, CliError

DESCRIPTION = """The operator's command line of DMS Failover, over its REST API.

The token is read from DMSCTL_TOKEN, else from the config file (`token = "..."`); the URL from
--url, DMSCTL_URL, the config file (`url = "..."`), else http://127.0.0.1:8000. The config file is
--config, else ~/.config/dmsctl.toml. Create a token with
`manage.py create_api_token USER`; switchover, maintenance and ack need the operator role."""

SEVERITIES = ["info", "warning", "critical"]


def _common(suppress: bool) -> argparse.ArgumentParser:
    """--json, --config and --url, accepted before or after the command."""
    default = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="machine-readable output")  # fmt: skip
    parent.add_argument("--config", default=default, metavar="PATH", help="config file (TOML: url, token)")
    parent.add_argument("--url", default=default, help="the control plane's base URL")
    return parent


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="dmsctl",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(suppress=False)],
    )
    main.add_argument("--version", action="version", version=f"dmsctl {VERSION}")
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(suppress=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common], epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip

    command("list", "every cluster: state, epoch, appliances, maintenance, replication")
    status = command("status", "one cluster: roles, epoch, timing and lease, heartbeat ages, replication lag, "
                     "the last failover and incident events")  # fmt: skip
    status.add_argument("cluster", metavar="CLUSTER", help="name or id")
    switch = command("switchover", "swap primary and secondary; waits for the outcome unless --no-wait")
    switch.add_argument("cluster", metavar="CLUSTER", help="name or id")
    switch.add_argument("--no-wait", action="store_true", help="return once the switchover is accepted")
    switch.add_argument("--timeout", type=_positive, default=60.0, help="seconds to wait (default 60)")
    maint = command("maintenance", "maintenance on or off (no automatic failover while on)")
    maint.add_argument("cluster", metavar="CLUSTER", help="name or id")
    maint.add_argument("state", choices=["on", "off"])
    events = command("events", "the last events, oldest first; --follow prints new ones as they come")
    events.add_argument("--cluster", metavar="CLUSTER", help="name or id")
    events.add_argument("--severity", action="append", choices=SEVERITIES, default=[], help="repeatable")
    events.add_argument("--type", action="append", default=[], help="event type, repeatable (e.g. server_failed)")
    events.add_argument("--limit", type=_page, default=20, help="how many past events (1-500, default 20)")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events (Ctrl-C stops)")
    events.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls (default 2)")
    ack = command("ack", "acknowledge events")
    ack.add_argument("event_ids", metavar="EVENT_ID", type=_event_id, nargs="+")
    return main


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600")
    return number


def _page(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 500")
    return int(value)


def _event_id(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not an event id")
    return int(value)


def run(args: argparse.Namespace):
    api = Api(config.load(args.config, args.url))
    if args.command == "list":
        return commands.cluster_list(api, args.json)
    if args.command == "status":
        return commands.status(api, args.cluster, args.json)
    if args.command == "switchover":
        return commands.switchover(api, args.cluster, args.json, not args.no_wait, args.timeout)
    if args.command == "maintenance":
        return commands.maintenance(api, args.cluster, args.state, args.json)
    if args.command == "events":
        return commands.events(api, args.json, args.cluster, args.severity, args.type, args.limit, args.follow,
                               args.interval, commands.stdout_line)  # fmt: skip
    return commands.acknowledge(api, args.event_ids, args.json)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on bad usage
    try:
        result = run(args)
    except CliError as error:
        print(f"dmsctl: {error.message}", file=sys.stderr)
        for reason in error.reasons:
            print(f"  - {reason}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:  # --follow ends with Ctrl-C
        return OK
    if result is not None:
        print(output.as_json(result) if args.json and not isinstance(result, str) else result)
    return OK
