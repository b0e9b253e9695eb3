"""Gunicorn settings of the demo site: 4 sync workers, each a small Django process.

The model is resident once, in modeld; the workers only hold a modeld client each (created
lazily after the fork), so adding workers adds no model memory.

    cd examples/django_demo && ../../.venv/bin/python -m gunicorn -c gunicorn.conf.py

Environment: DEMO_ADDRESS (bind address, default 127.0.0.1:8080), DEMO_WORKERS (default 4),
and MODELD_URL for the site itself (see demo_site/settings.py). Command-line flags
(--bind, --workers) override these.
"""

import os

wsgi_app = "demo_site.wsgi:application"
chdir = os.path.dirname(os.path.abspath(__file__))
bind = os.environ.get("DEMO_ADDRESS", "127.0.0.1:8080")
workers = int(os.environ.get("DEMO_WORKERS", "4"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = "-"
# Gunicorn >= 25 opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl);
# a second Gunicorn (tests, benchmarks, make run) would share it. The demo does not need it.
control_socket_disable = True
