"""The demo site in a real browser: Gunicorn (4 sync workers) serving examples/django_demo
against the session's modeld, driven by Debian's Chromium through Playwright.

The page's prediction for mlp must equal what the modeld client answers for the same input.
A screenshot of the answered page is saved to build/test-output/demo-page.png.
"""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import modeld
from modeld_server import REPO_ROOT
from process_log import ProcessLog

DEMO_DIR = REPO_ROOT / "examples" / "django_demo"
SCREENSHOT = REPO_ROOT / "build" / "test-output" / "demo-page.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WORKERS = 4
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
BOOTED = re.compile(r"Booting worker with pid: (\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PAGE_TIMEOUT_MS = 20_000


class Gunicorn:
    """Gunicorn on the demo site, its output read on a thread so the pipe never fills."""

    def __init__(self, modeld_url):
        env = dict(os.environ, MODELD_URL=modeld_url, DEMO_WORKERS=str(WORKERS))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
             "--bind", "127.0.0.1:0"],
            cwd=DEMO_DIR, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.output = ProcessLog(self.proc, "gunicorn")

    @property
    def log(self):
        return self.output.text

    def wait_for(self, regex, count=1, timeout=START_TIMEOUT_S):
        """Waits until `regex` has matched `count` times in the log; returns the matches."""
        return self.output.wait_for(regex, count, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.output.join(timeout=STOP_TIMEOUT_S)
        self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def demo_site(server):
    """The demo site's base URL, once Gunicorn listens, its workers booted and it answers."""
    gunicorn = Gunicorn(f"grpc://{server.address}")
    try:
        port = int(gunicorn.wait_for(LISTENING)[0].group(1))
        pids = {m.group(1) for m in gunicorn.wait_for(BOOTED, count=WORKERS)}
        assert len(pids) == WORKERS, gunicorn.log
        url = f"http://127.0.0.1:{port}"
        # The socket listens already; the request waits in its backlog for a worker.
        with urllib.request.urlopen(f"{url}/healthz", timeout=START_TIMEOUT_S) as response:
            health = json.loads(response.read())
        assert health["ready"] is True, health
        yield url
    finally:
        returncode = gunicorn.stop()
    assert returncode == 0, gunicorn.log


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def test_demo_page_shows_the_clients_prediction(server, demo_site, page, capsys):
    x = np.random.default_rng(2024).standard_normal(256).astype(np.float32)
    with modeld.Client(f"grpc://{server.address}") as client:
        expected = client.predict("mlp", x[None, :])[0]

    page.goto(f"{demo_site}/")
    assert page.input_value("#model") == "linear"
    assert page.input_value("#inputs") == "1, 2, 3"
    page.select_option("#model", "mlp")
    # The page's script shows mlp's count and swaps in its example.
    assert "256 numbers" in page.text_content("#count-hint")
    assert len(page.input_value("#inputs").split(",")) == 256
    page.fill("#inputs", ", ".join(repr(float(v)) for v in x))
    with page.expect_navigation():
        page.click("#predict")

    page.wait_for_selector("#prediction")
    assert page.get_attribute("#prediction", "data-model") == "mlp"
    shown = page.locator("#outputs li").evaluate_all("items => items.map(i => i.dataset.value)")
    np.testing.assert_array_equal(np.array(shown, dtype=np.float32), expected)
    assert page.text_content("#argmax") == str(int(np.argmax(expected)))
    assert page.input_value("#model") == "mlp"  # the form keeps the choice

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0
    with capsys.disabled():
        print(f"\n  demo page screenshot: {SCREENSHOT}")

    # A wrong count is an error on the page, not a 500.
    page.select_option("#model", "linear")
    page.fill("#inputs", "1, 2, 3, 4")
    with page.expect_navigation() as navigation:
        page.click("#predict")
    assert navigation.value.status == 200
    assert "linear takes 3 numbers; you entered 4." in page.text_content("#form-errors")
    assert page.locator("#prediction").count() == 0
