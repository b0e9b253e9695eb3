"""modeld.django's status page in a real browser: Gunicorn serving a small Django site
(python/tests/django/status_site: the admin's login, the page at /modeld/status) against a
modeld whose repository holds linear (ready) and broken (its model.onnx is not one: it fails
to load), driven by Debian's Chromium through Playwright.

A visitor is sent to the admin's login; staff who log in see every model with its state, the
server's reason for broken, and linear's requests from modeld's /metrics. The screenshot is
saved to build/test-output/status-page.png.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import modeld
from modeld_server import REPO_ROOT
from process_log import ProcessLog

SITE_DIR = REPO_ROOT / "python" / "tests" / "django"
SCREENSHOT = REPO_ROOT / "build" / "test-output" / "status-page.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
BOOTED = re.compile(r"Booting worker with pid: (\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PAGE_TIMEOUT_MS = 20_000
STAFF, PASSWORD = "staff", "a-long-test-password"


@pytest.fixture
def broken_server(launch, example_repository, tmp_path):
    """modeld on linear and broken, default model control (its repository index, which
    modeld serves in every mode, lists them)."""
    repository = tmp_path / "models"
    shutil.copytree(example_repository / "linear", repository / "linear")
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "1" / "model.onnx").write_bytes(b"not an ONNX model")
    return launch(repository)


def django_admin(env, *args):
    subprocess.run([sys.executable, "-m", "django", *args], cwd=SITE_DIR, env=env, check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


@pytest.fixture
def status_site(broken_server, tmp_path):
    """The site's base URL: Gunicorn (one worker) on a fresh database with a staff user."""
    grpc_url = f"grpc://{broken_server.address}"
    http_url = f"http://{broken_server.http_address}"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="status_site.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SITE_DIR), os.environ.get("PYTHONPATH")])),
        STATUS_SITE_DB=str(tmp_path / "site.sqlite3"),
        STATUS_SITE_MODELD=json.dumps({
            # gRPC: the metrics' URL must be given (the port serves none).
            "default": {"URL": grpc_url, "METRICS_URL": f"{http_url}/metrics",
                        "MODELS": ["linear", "broken"]},
            "rest": {"URL": http_url, "MODELS": ["linear"]},
        }),
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    django_admin(env, "migrate", "--noinput")
    django_admin(env, "createsuperuser", "--noinput", "--username", STAFF,
                 "--email", "staff@example.com")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1",
         "--no-control-socket", "status_site.wsgi:application"],
        cwd=SITE_DIR, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    output = ProcessLog(proc, "gunicorn")
    try:
        port = int(output.wait_for(LISTENING, timeout=START_TIMEOUT_S)[0].group(1))
        output.wait_for(BOOTED, timeout=START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        output.join(timeout=STOP_TIMEOUT_S)
        proc.stdout.close()
    assert proc.returncode == 0, output.text


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def cell(page, alias, model, version, name):
    row = (f'section[data-alias="{alias}"] tr[data-model="{model}"]'
           f'[data-version="{version}"]')
    return page.text_content(f"{row} td.{name}").strip()


def test_staff_log_in_and_see_the_models_their_reasons_and_traffic(broken_server, status_site,
                                                                    page, capsys):
    with modeld.Client(f"grpc://{broken_server.address}") as client:
        for _ in range(3):
            client.predict("linear", [[1.0, 2.0, 3.0]])
        with pytest.raises(modeld.InvalidInput):
            client.infer("linear", {"x": np.zeros((1, 4), np.float32)})

    # A visitor is sent to the admin's login, which comes back to the page.
    page.goto(f"{status_site}/modeld/status")
    assert "/admin/login/" in page.url and "next=/modeld/status" in page.url
    page.fill("#id_username", STAFF)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.url == f"{status_site}/modeld/status"
    assert page.title() == "modeld status"

    for alias in ("default", "rest"):
        section = f'section[data-alias="{alias}"]'
        assert page.get_attribute(f"{section} [data-live]", "data-live") == "true"
        assert page.get_attribute(f"{section} [data-ready]", "data-ready") == "true"
        assert cell(page, alias, "linear", "2", "state") == "READY"
        assert cell(page, alias, "broken", "1", "state") == "UNAVAILABLE"
        reason = cell(page, alias, "broken", "1", "reason")
        assert "model.onnx" in reason and "Protobuf parsing failed" in reason, reason
    assert cell(page, "default", "broken", "1", "expected") == "yes"
    assert cell(page, "rest", "broken", "1", "expected") == "no"
    # Since modeld started: 4 requests to linear's newest version, 1 refused.
    assert cell(page, "default", "linear", "2", "requests") == "4"
    assert cell(page, "default", "linear", "2", "errors") == "1"
    assert cell(page, "default", "linear", "2", "error-rate") == "25.0 %"
    assert cell(page, "default", "linear", "2", "mean").endswith(" ms")
    assert "totals since modeld started" in page.text_content('section[data-alias="default"]')
    assert page.locator("p.error").count() == 0
    # Both aliases list the server's own models (its repository index), not only MODELS.
    assert page.locator("p.listing").count() == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0
    with capsys.disabled():
        print(f"\n  status page screenshot: {SCREENSHOT}")
