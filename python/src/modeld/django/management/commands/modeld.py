"""``manage.py modeld``: ask the configured modeld servers.

    manage.py modeld status [--using ALIAS]
        Each alias's server (live, ready) and the readiness of its MODELS. Exits with 1 when
        anything is not ready.

    manage.py modeld infer MODEL --json JSON [--using ALIAS] [--version V]
        Runs MODEL and prints its output as JSON. A JSON list is the single input of
        ``predict`` (include the batch dimension: '[[1, 2, 3]]'); a JSON object maps input
        names to values for ``infer`` and prints an object of outputs. ``--json -`` reads
        stdin. The client casts the numbers to the datatypes the model declares.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import clients
from ...conf import DEFAULT_ALIAS
from ...handler import AliasDoesNotExist
from ...probe import probe


class Command(BaseCommand):
    help = "Shows whether the modeld servers of settings.MODELD are ready, or runs a model."
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)  # call_command(..., stdin=StringIO(...)) for --json -

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True,
                                            metavar="{status,infer}")
        status = subcommands.add_parser(
            "status", help="live/ready of each alias's server and its MODELS; exit 1 if not ready")
        status.add_argument("--using", help="only this alias (default: every alias)")
        run = subcommands.add_parser("infer", help="run a model and print its output as JSON")
        run.add_argument("model")
        run.add_argument("--json", dest="data", required=True,
                         help="a JSON list (predict) or object of named inputs (infer); "
                         "- reads stdin")
        run.add_argument("--using", default=DEFAULT_ALIAS, help="the alias (default: default)")
        run.add_argument("--version", help="the model version (default: the server's choice)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "status":
                self.status(options["using"])
            else:
                self.infer(options["model"], options["data"], options["using"],
                           options["version"], options.get("stdin") or sys.stdin)
        except AliasDoesNotExist as error:  # its message names the configured aliases
            raise CommandError(str(error)) from error

    # --- status ------------------------------------------------------------------------------

    def status(self, using: str | None) -> None:
        targets = [clients[using]] if using else clients.all()
        not_ready: list[str] = []
        for client in targets:
            status = probe(client, client.alias, client.url, client.models, log=False)
            line = (f"{status.alias}  {status.url}  live: {_yes(status.live)}  "
                    f"ready: {_yes(status.ready)}")
            if status.error:
                line += f"  ({status.error})"
            self.stdout.write(self._style(line, status.ready))
            for name, ready in status.models.items():
                detail = status.model_errors.get(name, "")
                text = f"  {name}: {'ready' if ready else 'NOT READY'}"
                self.stdout.write(self._style(f"{text}  {detail}".rstrip(), ready))
            not_ready += status.not_ready()
        if not_ready:
            raise CommandError(f"not ready: {', '.join(not_ready)}", returncode=1)

    def _style(self, text: str, ok: bool) -> str:
        return self.style.SUCCESS(text) if ok else self.style.ERROR(text)

    # --- infer -------------------------------------------------------------------------------

    def infer(self, model: str, data: str, using: str, version: str | None, stdin: Any) -> None:
        import modeld

        try:
            value = json.loads(stdin.read() if data == "-" else data)
        except json.JSONDecodeError as error:
            raise CommandError(f"--json is not valid JSON: {error}") from error
        if not isinstance(value, (list, dict)):
            raise CommandError("--json must be a JSON list (predict) or object (infer)")
        client = clients[using]
        try:
            if isinstance(value, list):
                output: Any = client.predict(model, value, version=version).tolist()
            else:
                result = client.infer(model, value, version=version)
                output = {name: array.tolist() for name, array in result.items()}
        except modeld.ModeldError as error:
            raise CommandError(f"{model}: {error.message}") from error
        self.stdout.write(json.dumps(output))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
