"""`make run`: the whole product on one machine, in the run folder `run/` (or `$DMS_RUN_DIR`).

python -m demo                        migrate, seed, start everything, wait, print; Ctrl-C stops
python -m demo kill-primary dmm-demo  SIGKILL the agent that is the cluster's primary now
python -m demo start-agent dmm-demo-a start a demo agent again (after kill-primary)
"""

from __future__ import annotations

import argparse
import os
import sys

import django

from demo.run_folder import LOGS, ROOT, SQLITE_URL, rel, say

os.chdir(ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dms_admin.settings")
# The settings' SQLite default is ROOT/run; the demo's database follows the run folder.
os.environ.setdefault("DATABASE_URL", SQLITE_URL)
django.setup()

from demo.agents import kill_primary, start_agent  # noqa: E402 (the models need the settings above)
from demo.orchestrator import Demo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="start the demo (the default)")
    kill = commands.add_parser("kill-primary", help="SIGKILL the agent that is the cluster's primary now")
    kill.add_argument("cluster")
    start = commands.add_parser("start-agent", help="start a demo agent again (after kill-primary)")
    start.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "kill-primary":
        return kill_primary(args.cluster)
    if args.command == "start-agent":
        return start_agent(args.name)
    try:
        return Demo().run()
    except RuntimeError as error:
        say(f"{error}; everything is stopped. Logs: {rel(LOGS)}/")
        return 1


sys.exit(main())
