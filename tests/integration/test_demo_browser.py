"""The demo site in a real browser: Gunicorn (4 sync workers) serving examples/django_demo
against the session's modeld, driven by Debian's Chromium through Playwright.

The page's prediction for mlp must equal what the modeld client answers for the same input;
so must the draw-a-digit canvas's probabilities for the 8x8 image it made of a stroke drawn
with the mouse. Screenshots of the answered page are saved to build/test-output/
(demo-page.png, demo-digits.png).
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
DIGITS_SCREENSHOT = REPO_ROOT / "build" / "test-output" / "demo-digits.png"
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
def demo_site(server, example_repository):
    """The demo site's base URL, once Gunicorn listens, its workers booted and it answers."""
    # The site's /healthz waits for digits too (demo_site/settings.py).
    if not (example_repository / "digits" / "1" / "model.onnx").is_file():
        pytest.fail(f"{example_repository} has no digits model; regenerate it (make models)")
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


def test_a_drawn_digit_is_predicted_through_modeld(server, demo_site, page, capsys):
    page.goto(f"{demo_site}/")
    assert page.is_disabled("#digit-predict")  # nothing drawn yet
    assert page.is_hidden("#digit-result")
    canvas = page.locator("#digit-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # A vertical stroke down the middle, as a "1" is drawn (which digit the model reads is not
    # asserted: a hand-drawn stroke is fuzzy).
    x = box["x"] + box["width"] / 2
    top, height = box["y"] + box["height"] * 0.15, box["height"] * 0.7
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + step % 3, top + height * step / 20)
    # Lifting the pen predicts; so does the button.
    with page.expect_response(lambda r: r.url.endswith("/api/digits")) as first:
        page.mouse.up()
    assert first.value.status == 200, first.value.text()
    with page.expect_response(lambda r: r.url.endswith("/api/digits")) as second:
        page.click("#digit-predict")
    assert second.value.status == 200, second.value.text()
    page.wait_for_selector("#digit-result", state="visible")

    # The 8x8 image sent: 0..16, white ink on black, a centred vertical bar.
    pixels = np.array(json.loads(page.get_attribute("#digit-preview", "data-pixels")),
                      dtype=np.float32)
    assert pixels.shape == (64,)
    assert pixels.min() == 0 and 0 < pixels.max() <= 16
    assert np.all(pixels == np.round(pixels))
    image = pixels.reshape(8, 8)
    inked = np.nonzero(image.sum(axis=0))[0]
    assert image.sum(axis=1).all(), image  # every row: the stroke fills the height
    assert set(inked) <= {2, 3, 4, 5}, image  # centred, a bar

    # Ten probabilities that sum to 1, exactly modeld's for that image; the label their argmax.
    with modeld.Client(f"grpc://{server.address}") as client:
        expected = client.infer("digits", {"pixels": pixels[None, :]})
    shown = page.locator("#digit-probabilities li").evaluate_all(
        "items => items.map(i => i.dataset.value)")
    probabilities = np.array(shown, dtype=np.float32)
    assert probabilities.shape == (10,)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-4, probabilities
    np.testing.assert_array_equal(probabilities, expected["probabilities"][0])
    label = int(page.text_content("#digit-label"))
    assert label == int(np.argmax(probabilities)) == int(expected["label"].reshape(-1)[0])
    assert page.locator("#digit-probabilities li.top").count() == 1
    assert page.text_content("#digit-probabilities li.top .bar-name") == str(label)
    assert page.is_hidden("#digit-error")

    DIGITS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DIGITS_SCREENSHOT), full_page=True)
    with capsys.disabled():
        print(f"\n  digits canvas screenshot: {DIGITS_SCREENSHOT} (read as {label})")

    # Clear empties the canvas and the answer.
    page.click("#digit-clear")
    assert page.is_hidden("#digit-result")
    assert page.is_disabled("#digit-predict")
    assert page.get_attribute("#digit-preview", "data-pixels") is None

    # modeld unavailable (the site's answer, as modeld down gives it): a visible message.
    page.route("**/api/digits", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body=json.dumps({"error": "failed to connect to all addresses", "code": "UNAVAILABLE"})))
    page.mouse.move(x, top)
    page.mouse.down()
    page.mouse.move(x, top + height)
    with page.expect_response(lambda r: r.url.endswith("/api/digits")):
        page.mouse.up()
    page.wait_for_selector("#digit-error", state="visible")
    assert "modeld could not answer (503): failed to connect" in page.text_content("#digit-error")
    assert page.is_hidden("#digit-result")


def test_a_digit_drawn_by_touch_is_predicted(demo_site, page):
    """A finger on a touch screen (Chromium's own touch events, through the DevTools protocol):
    the canvas takes the stroke, not the page's scrolling."""
    context = page.context.browser.new_context(viewport={"width": 400, "height": 800},
                                               has_touch=True, is_mobile=True)
    phone = context.new_page()
    phone.set_default_timeout(PAGE_TIMEOUT_MS)
    phone.goto(f"{demo_site}/")
    phone.locator("#digit-canvas").scroll_into_view_if_needed()
    box = phone.locator("#digit-canvas").bounding_box()
    scrolled = phone.evaluate("window.scrollY")
    devtools = context.new_cdp_session(phone)

    def touch(kind, fraction_x=None, fraction_y=None):
        points = [] if fraction_x is None else [
            {"x": box["x"] + box["width"] * fraction_x, "y": box["y"] + box["height"] * fraction_y}]
        devtools.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    # A "7": across the top, then down to the left.
    touch("touchStart", 0.3, 0.2)
    for step in range(1, 11):
        touch("touchMove", 0.3 + 0.4 * step / 10, 0.2)
    for step in range(1, 11):
        touch("touchMove", 0.7 - 0.25 * step / 10, 0.2 + 0.6 * step / 10)
    with phone.expect_response(lambda r: r.url.endswith("/api/digits")) as answer:
        touch("touchEnd")
    assert answer.value.status == 200, answer.value.text()
    phone.wait_for_selector("#digit-result", state="visible")
    assert phone.evaluate("window.scrollY") == scrolled  # the finger drew, the page stayed
    probabilities = np.array(phone.locator("#digit-probabilities li").evaluate_all(
        "items => items.map(i => i.dataset.value)"), dtype=np.float32)
    assert probabilities.shape == (10,) and abs(float(probabilities.sum()) - 1.0) < 1e-4
    assert int(phone.text_content("#digit-label")) == int(np.argmax(probabilities))
    pixels = json.loads(phone.get_attribute("#digit-preview", "data-pixels"))
    assert len(pixels) == 64 and sum(pixels) > 0
    context.close()
