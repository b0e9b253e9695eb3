#!/usr/bin/env python3
"""Runs the tests of the modeld.django app with Django's own test runner.

    .venv/bin/python python/tests/django/runtests.py [-v 2] [--failfast] [-k PATTERN] [LABEL ...]

LABELs are test modules, classes or methods of this folder (test_checks,
test_handler.ClientHandlerTests, ...); none runs them all. The tests that need a server start
build/bin/modeld on examples/models themselves (tests/integration/modeld_server.py).
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    sys.path.insert(0, str(HERE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    import django
    from django.conf import settings
    from django.test.utils import get_runner

    django.setup()
    runner_class = get_runner(settings)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", nargs="*", metavar="LABEL")
    runner_class.add_arguments(parser)
    parser.set_defaults(top_level=str(HERE))
    options = vars(parser.parse_args())
    labels = options.pop("labels") or [str(HERE)]
    runner = runner_class(**options)
    failures = runner.run_tests(labels)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
