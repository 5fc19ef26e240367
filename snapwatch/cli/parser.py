"""The command line's grammar: every command, option and example, written for the person at the terminal."""

from __future__ import annotations

import argparse

from snapwatch import __version__
from snapwatch.errors import UsageError

DESCRIPTION = """\
snapwatch follows your backend's Snapchat Conversions API log, notices within seconds when Snap stops
accepting conversions (a streak of 401s, 429s, 5xx, rejected events, or silence), names the likely
cause with its evidence, and tells the on-call person exactly what to do."""

EXAMPLES = """\
examples:
  snapwatch demo                                          a live run in a temporary folder, no config needed
  snapwatch scan /var/log/app/snap_conversions_api.log*   what happened in these logs, incidents diagnosed
  snapwatch check-config -c /etc/snapwatch/config.yaml    is the config valid? (secrets masked)
  snapwatch status                                        what the running daemon has seen
  snapwatch diagnose --probe                              why are conversions failing right now?

Each command has its own help: snapwatch scan --help. Exit codes: 0 success, 1 failure, 2 usage error,
75 another snapwatch holds the state directory, 78 invalid configuration."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as a UsageError instead of exiting on its own."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prefixes "snapwatch: " to every error line; a subcommand's name is kept ("scan: ...").
        prog = self.prog.removeprefix("snapwatch").strip()
        raise UsageError(f"{prog}: {message}" if prog else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="snapwatch", description=DESCRIPTION, epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"snapwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour in text output: auto (on a terminal, unless NO_COLOR is set), always, never")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, summary: str, example: str, *, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                           epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
        # also after the command name (snapwatch scan --color never …); the global value stays otherwise
        p.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
        if config:
            p.add_argument("-c", "--config", metavar="CONFIG",
                           help="the config file (default: $SNAPWATCH_CONFIG, else /etc/snapwatch/config.yaml)")
        return p

    command("run", "follow the logs, detect incidents, diagnose them and alert, until stopped (SIGHUP reloads)",
            "snapwatch run -c /etc/snapwatch/config.yaml")
    p = command("scan", "read whole log files (rotated and gzip backups too) and report what happened",
                "snapwatch scan --env-file /srv/app/.env /var/log/app/snap_conversions_api.log*")
    p.add_argument("--env-file", metavar="FILE", help="the backend's .env: compare its token with the log's")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("files", nargs="+", metavar="FILE", help="log files; backups are read oldest first")
    p = command("diagnose", "rank the likely causes now, from the configured token, the recent log and the state",
                "snapwatch diagnose --probe")
    p.add_argument("--probe", action="store_true", help="also ask Snap's validate endpoint about the token")
    p.add_argument("--now", metavar="TIME", help="judge as of this ISO 8601 time instead of the clock")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("token", "decode and explain one token without ever printing it",
                "snapwatch token --env-file /srv/app/.env")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--env-file", metavar="FILE",
                     help="read the token from this .env (its key from the config, else SNAP_ACCESS_TOKEN)")
    src.add_argument("--stdin", action="store_true", help="read the token from standard input")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("check-config", "check the config the way run does, and print it with secrets masked",
                "snapwatch check-config -c /etc/snapwatch/config.yaml")
    p.add_argument("--strict", action="store_true", help="warnings (a source that does not exist yet, …) fail too")
    command("test-alert", "send one test message to every configured target and say which failed",
            "snapwatch test-alert -c /etc/snapwatch/config.yaml")
    p = command("status", "what the daemon has seen: positions, counts, open incidents, the outbox",
                "snapwatch status --history")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--history", action="store_true", help="also list recent incidents, resolved ones too")
    p = command("report", "one self-contained HTML page: timeline, incidents with verdicts, tokens",
                "snapwatch report --incident 3f2a9c0d1e4b5a6c -o outage.html")
    p.add_argument("--since", metavar="DURATION", help="from the daemon's history: this far back (default 24h)")
    p.add_argument("--incident", metavar="ID", help="from the daemon's history: one incident and the time around it")
    p.add_argument("--env-file", metavar="FILE", help="with log files: the backend's .env, as for scan")
    p.add_argument("-o", "--output", metavar="FILE", help="write the page here (default: standard output)")
    p.add_argument("files", nargs="*", metavar="FILE", help="log files to read, as scan reads them")
    p = command("demo", "a live run in a temporary folder: healthy traffic, a 401 streak, the alert, the recovery",
                "snapwatch demo --report demo.html", config=False)
    p.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report", metavar="FILE", help="also write the run's HTML report here")
    p = command("completion", "print a shell completion script for bash or zsh",
                "snapwatch completion bash | sudo tee /etc/bash_completion.d/snapwatch", config=False)
    p.add_argument("shell", choices=("bash", "zsh"))
    return parser
