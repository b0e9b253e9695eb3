"""Command line client of modeld: ``python -m modeld`` (or ``modeld-client``).

    python -m modeld [--url URL] [--timeout S] status [--model M ...]
    python -m modeld [--url URL] infer MODEL --json '[[1, 2, 3]]' [--version V]
    python -m modeld [--url URL] infer MODEL --json '{"NAME": JSON, ...}' [--output NAME ...]
    python -m modeld [--url URL] infer MODEL --input NAME=JSON [--input NAME=JSON ...]
                     [--output NAME ...] [--version V]
    python -m modeld [--url URL] metadata [MODEL] [--version V]

Every command prints JSON on stdout. ``status`` checks the models named with --model, else
every model the server has (none over a queue, which carries no list of models); it adds
modeld's reason for each that is not ready, and exits 1 when the server is not live or not
ready or one of those models is not ready. Errors print ``error: <message>`` on stderr
and exit 1. The URL (grpc://, http://, redis:// or amqp://, as modeld.Client takes) defaults
to $MODELD_URL, else grpc://127.0.0.1:8001.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._client import Client
from ._redis_url import redact_url
from .errors import ModeldError

DEFAULT_URL = "grpc://127.0.0.1:8001"


def _jsonable(value: Any) -> Any:
    """A numpy array (or its elements) as JSON values: bytes become text (UTF-8)."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ModeldError(f"{what} is not valid JSON: {error}", "INVALID_ARGUMENT") from None


def _parse_input(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ModeldError(f"--input {text!r} is not NAME=JSON", "INVALID_ARGUMENT")
    return name, _parse_json(value, f"--input {name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeld",
        description="Talk to a modeld server over gRPC or HTTP (KServe V2), or through its "
                    "Redis or AMQP queue.",
        epilog="Errors print 'error: <message>' on stderr and exit with status 1.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("MODELD_URL", DEFAULT_URL),
        help="grpc://host:port, http://host:port, redis://host:port/db[?stream=KEY|?list=KEY] "
        "or amqp://user:password@host:port/vhost[?queue=NAME] "
        "(default: $MODELD_URL, else %(default)s)"
        if "MODELD_URL" not in os.environ
        else "grpc://host:port, http://host:port, redis://host:port/db[?stream=KEY|?list=KEY] "
        "or amqp://user:password@host:port/vhost[?queue=NAME] "
        "(default: $MODELD_URL = %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds for each call, retries included (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser(
        "status", help="is the server live and ready, and are the models named ready",
        description="Prints {\"url\", \"live\", \"ready\", \"models\": {name: ready}}, and "
                    "\"reasons\": {name: modeld's reason} for the models that are not ready; "
                    "exits 1 when anything is not live or ready.")
    status.add_argument("--model", action="append", default=[], metavar="MODEL",
                        help="check this model (repeatable; default: every model the server "
                             "has)")

    infer = commands.add_parser(
        "infer", help="run a model",
        description="With --json LIST: the model's only input; prints its only output as JSON. "
                    "With --json OBJECT ({input name: value}, as manage.py modeld infer takes) "
                    "or --input: prints {output name: value} as JSON. --json - reads stdin.")
    infer.add_argument("model")
    source = infer.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", metavar="JSON",
                        help="a list: the value of the model's only input; an object: "
                             "{input name: value}; -: read it from stdin")
    source.add_argument("--input", action="append", metavar="NAME=JSON",
                        help="the value of input NAME (repeat for several inputs)")
    infer.add_argument("--output", action="append", metavar="NAME",
                       help="only return this output (repeatable; with --input or a --json "
                            "object)")
    infer.add_argument("--version", help="the model version (default: the latest)")

    metadata = commands.add_parser("metadata", help="server metadata, or a model's")
    metadata.add_argument("model", nargs="?")
    metadata.add_argument("--version", help="the model version (with MODEL)")
    return parser


def _run(args: argparse.Namespace, client: Client) -> tuple[Any, int]:
    if args.command == "status":
        live = client.live()
        ready = client.ready()
        names = list(args.model)
        if not names:
            try:
                names = sorted({status.name for status in client.models()})
            except ModeldError:
                names = []  # a queue carries no list of models
        statuses = {name: client.model_status(name) for name in names}
        models = {name: status.ready for name, status in statuses.items()}
        result: dict[str, Any] = {"url": redact_url(client.url), "live": live, "ready": ready,
                                  "models": models}
        reasons = {name: status.reason for name, status in statuses.items()
                   if not status.ready and status.reason}
        if reasons:
            result["reasons"] = reasons
        ok = live and ready and all(models.values())
        return result, 0 if ok else 1
    if args.command == "infer":
        if args.json is not None:
            value = _parse_json(sys.stdin.read() if args.json == "-" else args.json, "--json")
            if not isinstance(value, dict):
                if args.output:
                    raise ModeldError("--output goes with --input or a --json object, not a "
                                      "--json list", "INVALID_ARGUMENT")
                return _jsonable(client.predict(args.model, value, version=args.version)), 0
            inputs = value
        else:
            inputs = dict(_parse_input(text) for text in args.input)
        outputs = client.infer(args.model, inputs, version=args.version, outputs=args.output)
        return {name: _jsonable(value) for name, value in outputs.items()}, 0
    if args.version is not None and args.model is None:
        raise ModeldError("--version needs a MODEL", "INVALID_ARGUMENT")
    return client.metadata(args.model, args.version), 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with Client(args.url, timeout=args.timeout) as client:
            result, status = _run(args, client)
    except (ModeldError, ValueError, ImportError) as error:  # ImportError: redis-py, pika missing
        print(f"error: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
