"""compose.yaml: its structure against the Containerfile and the Makefile, and the whole demo
brought up from its values (make image-test, after make image and make models).

The file's checks need no container: every service runs an image that `make image` tags
from the Containerfile stage it names as its build target; modeld's published ports, volume,
user, read-only root and healthcheck are its runtime stage's (EXPOSE, VOLUME, USER, HOME,
HEALTHCHECK, parsed by tests/deploy/test_deploy_files.py's parser); the URLs by which the
services reach each other name the right service on the port its image EXPOSEs; depends_on
names services, has no cycle, and waits for health only where there is a healthcheck.

The live checks: podman-compose is not installed here, and bridge networking needs iptables,
so the stack is started with plain `podman run --network=host` from compose.yaml's own
values: for each service its image, command, environment, volumes, read_only, tmpfs, user
and healthcheck, in depends_on's order, a service_healthy dependency waited for by running
its healthcheck (`podman healthcheck run`), as compose does. Every service name resolves to
127.0.0.1 (--add-host).

Ports: all containers share the host's network, where other things may use the default
ports (and the test suite starts Erlang nodes of its own), so every port is moved to a free
one chosen for the run. PORTS lists the default ports: modeld's HTTP 8000 and gRPC 8001,
the demo's 8080, Redis's 6379, RabbitMQ's AMQP 5672, its Erlang distribution port 25672 and
its epmd 4369 (the last two the RabbitMQ stage's ENV). remap() replaces every stand-alone
occurrence of one of them, a number not part of a longer word or dotted number, in a
command, an environment value or a healthcheck, so `redis://redis:6379/0` becomes
`redis://redis:41234/0`, `0.0.0.0:8000` `0.0.0.0:41235` and `/dev/tcp/127.0.0.1/8000`
`/dev/tcp/127.0.0.1/41235`. What an image sets itself (a CMD when the service gives no
command, an ENV such as RABBITMQ_NODE_PORT or the demo's DEMO_ADDRESS) is read from its
Containerfile stage and passed remapped when it names a port.

Then modeld must be ready with both brokers connected, the demo's page must answer and
predict through modeld (the form, with its CSRF token, and the JSON API), a batch sent
through Celery (Redis) must be scored by modeld, and a request sent through RabbitMQ must be
answered by modeld. Every container is removed at the end, also when a check fails.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploy.test_deploy_files import (CONTAINERFILE, MAKEFILE, makefile_variable, parse_flags,
                                      parse_stages, port_of)

from podman import REPO_ROOT, Container, free_port, http_status, podman

COMPOSE = REPO_ROOT / "compose.yaml"
PORTS = (8000, 8001, 8080, 6379, 5672, 25672, 4369)
PORT_RE = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
START_TIMEOUT_S = 150  # the whole stack, healthy
BATCH_TIMEOUT_S = 30
CONDITIONS = {"service_started", "service_healthy"}
# linear's answer for [1, 2, 3] (README): y = xW + b of its newest version.
LINEAR_INPUT, LINEAR_OUTPUT = [1.0, 2.0, 3.0], 9.5


# ----------------------------------------------------------------------------- the file


def interpolate(value):
    """compose.yaml's values as compose reads them: `$$` is a `$`; any other `$` would be
    replaced from the environment of whoever runs compose, which this file must not depend
    on."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")
    assert not any("$" in part for part in parts), (
        f"compose.yaml: {value!r} takes a variable from the environment compose runs in;"
        " write $$ for a $ the container should see")
    return "$".join(parts)


def load_compose():
    with open(COMPOSE, encoding="utf-8") as f:
        return interpolate(yaml.safe_load(f))


@pytest.fixture(scope="module")
def compose():
    assert COMPOSE.is_file(), f"{COMPOSE} is missing"
    return load_compose()


@pytest.fixture(scope="module")
def stages():
    return parse_stages(CONTAINERFILE.read_text(encoding="utf-8"))


def make_image_tags():
    """{Containerfile target: tag} of the `make image` recipe's podman builds."""
    tags = {}
    text = MAKEFILE.read_text(encoding="utf-8")
    recipe = re.search(r"^image:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe, "the Makefile has no `image:` rule"
    for line in recipe.group(1).splitlines():
        target = re.search(r"--target[= ](\S+)", line)
        tag = re.search(r"\s-t\s+\$\((\w+)\)", line)
        if target and tag:
            tags[target.group(1)] = makefile_variable(tag.group(1))
    return tags


def service_env(service):
    """A service's environment (a mapping or a list of KEY=VALUE) as {key: str}."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service):
    """{service: condition} (depends_on as a list means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def healthcheck_test(service, stage):
    """The service's healthcheck as compose's test list (its own, else the image's), or None."""
    check = service.get("healthcheck")
    if check and not check.get("disable"):
        test = check["test"]
        return ["CMD-SHELL", test] if isinstance(test, str) else list(test)
    if stage.healthcheck and stage.healthcheck != ["NONE"]:
        return ["CMD", *stage.healthcheck]
    return None


def container_ports(service):
    """The container side of each published port ("[ip:]host:container[/proto]")."""
    return sorted(int(str(p).split("/")[0].rsplit(":", 1)[-1]) for p in service.get("ports", []))


def mount(spec):
    """A short-syntax volume: (source, target, options)."""
    source, target, *options = spec.split(":")
    return source, target, options[0].split(",") if options else []


def start_order(services):
    """The service names in an order where each comes after those it depends on."""
    order, visiting = [], set()

    def visit(name, path):
        assert name in services, f"depends_on names {name!r}, not a service ({' -> '.join(path)})"
        if name in order:
            return
        assert name not in visiting, f"depends_on has a cycle: {' -> '.join([*path, name])}"
        visiting.add(name)
        for dependency in depends_on(services[name]):
            visit(dependency, [*path, name])
        order.append(name)

    for name in services:
        visit(name, [])
    return order


def test_every_service_is_an_image_make_image_builds(compose, stages):
    services = compose.get("services")
    assert set(services) == {"modeld", "redis", "rabbitmq", "demo"}, sorted(services)
    tags = make_image_tags()
    for name, service in services.items():
        image, build = service.get("image"), service.get("build")
        assert image, f"{name} has no image"
        assert isinstance(build, dict) and build.get("context") == ".", (
            f"{name}: build must be {{context: ., target: ...}} (docker compose up --build)")
        target = build.get("target")
        assert target in stages, f"{name}'s build target {target!r} is not a Containerfile stage"
        assert tags.get(target) == image, (
            f"{name} runs {image}, but `make image` tags --target {target} as"
            f" {tags.get(target)!r}")
        assert not service.get("privileged"), f"{name} is privileged"
        user = service.get("user") or stages[target].user
        assert user and user.split(":")[0] not in ("root", "0"), f"{name} runs as root"
    assert list(stages)[-1] == "runtime", (
        f"runtime must stay the Containerfile's last stage (its default target): {list(stages)}")


def test_modeld_is_the_runtime_stage(compose, stages):
    service, runtime = compose["services"]["modeld"], stages["runtime"]
    assert service["build"]["target"] == "runtime"
    command = service.get("command")
    assert isinstance(command, list), "modeld's command: a list of modeld's flags"
    flags = parse_flags(command)
    # Ports: the published ones are the EXPOSEd ones, where modeld listens on every interface.
    assert container_ports(service) == sorted(runtime.expose), (
        f"modeld publishes {container_ports(service)}, the image EXPOSEs {runtime.expose}")
    listening = sorted(port_of(flags[flag])[1] for flag in ("--http-address", "--grpc-address"))
    assert listening == sorted(runtime.expose), f"modeld listens on {listening}"
    for flag in ("--http-address", "--grpc-address"):
        assert port_of(flags[flag])[0] == "0.0.0.0", f"{flag}={flags[flag]}: not reachable"
    # The model repository: the image's VOLUME, mounted read-only from make models' folder.
    mounts = [mount(spec) for spec in service.get("volumes", [])]
    at_volume = [m for m in mounts if m[1] == runtime.volumes[0]]
    assert at_volume, f"nothing is mounted at the image's VOLUME {runtime.volumes[0]}"
    source, _, options = at_volume[0]
    assert source == "./examples/models" and "ro" in options, at_volume[0]
    assert flags["--model-repository"] == runtime.volumes[0]
    # The image's user, a read-only root and a tmpfs at HOME, where the frameworks write.
    assert service.get("user") == runtime.user, (
        f"modeld runs as {service.get('user')!r}, the image's USER is {runtime.user!r}")
    assert service.get("read_only") is True, "modeld's root file system must be read-only"
    assert runtime.env.get("HOME") in service.get("tmpfs", []), (
        f"no tmpfs at the image's HOME {runtime.env.get('HOME')}")
    # The healthcheck restates the image's.
    assert healthcheck_test(service, runtime) == ["CMD", *runtime.healthcheck], (
        "modeld's healthcheck is not the image's HEALTHCHECK")
    assert service.get("stop_grace_period"), "modeld drains on SIGTERM: give it the time"


def test_the_services_reach_each_other(compose, stages):
    services = compose["services"]
    modeld_flags = parse_flags(services["modeld"]["command"])
    demo_env = service_env(services["demo"])
    grpc_port = port_of(modeld_flags["--grpc-address"])[1]
    assert demo_env.get("MODELD_URL") == f"grpc://modeld:{grpc_port}", demo_env.get("MODELD_URL")
    redis_url = f"redis://redis:{stages['redis'].expose[0]}/0"
    for flag, variable in (("--celery-broker", "CELERY_BROKER_URL"),
                           ("--celery-result-backend", "CELERY_RESULT_BACKEND")):
        assert modeld_flags.get(flag) == redis_url, f"modeld's {flag}={modeld_flags.get(flag)}"
        assert demo_env.get(variable) == redis_url, f"the demo's {variable} is not {redis_url}"
    amqp = urllib.parse.urlsplit(modeld_flags.get("--amqp-url", ""))
    assert (amqp.scheme, amqp.hostname, amqp.port) == (
        "amqp", "rabbitmq", stages["rabbitmq"].expose[0]), modeld_flags.get("--amqp-url")
    assert not amqp.query, "modeld's --amqp-url takes no ?query: --amqp-queue names the queue"
    assert demo_env.get("DJANGO_ALLOWED_HOSTS"), "the demo needs DJANGO_ALLOWED_HOSTS"
    demo_stage = stages["demo"]
    assert container_ports(services["demo"]) == sorted(demo_stage.expose)
    address = demo_env.get("DEMO_ADDRESS") or demo_stage.env.get("DEMO_ADDRESS")
    assert port_of(address) == ("0.0.0.0", demo_stage.expose[0]), f"Gunicorn binds {address}"
    # Redis and RabbitMQ stay inside the compose network.
    for name in ("redis", "rabbitmq"):
        assert not services[name].get("ports"), f"{name} is published"


def test_depends_on_waits_for_healthy_services(compose, stages):
    services = compose["services"]
    order = start_order(services)
    assert order.index("demo") > order.index("modeld") > order.index("rabbitmq")
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert condition in CONDITIONS, f"{name} waits for {dependency} to be {condition}"
            if condition == "service_healthy":
                target = services[dependency]["build"]["target"]
                assert healthcheck_test(services[dependency], stages[target]), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck")
    for name, service in services.items():
        assert healthcheck_test(service, stages[service["build"]["target"]]), (
            f"{name} has no healthcheck")


def test_the_header_says_how_to_start_it():
    header = COMPOSE.read_text(encoding="utf-8").split("\nservices:")[0]
    for text in ("make image models && podman-compose up", "docker compose up --build",
                 "http://127.0.0.1:8080/", "http://127.0.0.1:8000/", "grpc://127.0.0.1:8001"):
        assert text in header, f"compose.yaml's header comment does not say {text!r}"


# ----------------------------------------------------------------------------- the stack


def remap(value, ports):
    """`value` with every stand-alone default port number replaced by its free port."""
    return PORT_RE.sub(lambda m: str(ports.get(int(m.group(1)), m.group(1))), value)


def choose_ports():
    """{default port: a distinct free port} for PORTS."""
    chosen = {}
    while len(chosen) < len(PORTS):
        port = free_port()
        if port not in chosen.values() and port not in PORTS:
            chosen[PORTS[len(chosen)]] = port
    return chosen


def seconds(text, default):
    """A compose duration ("10s", "1m30s", "500ms") in seconds."""
    if text is None:
        return default
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)):
        total += float(number) * units[unit]
    return total


@dataclass
class Service:
    name: str
    image: str
    run_options: list
    args: list
    healthcheck: list | None
    container: Container | None = None

    def healthy(self):
        """Runs the healthcheck once, as compose's service_healthy does (no check: running)."""
        running, code = self.container.state()
        if not running:
            raise AssertionError(f"{self.name} exited with {code}; its log:\n"
                                 f"{self.container.logs()}")
        if self.healthcheck is None:
            return True
        result = podman("healthcheck", "run", self.container.name, check=False, timeout=60)
        return result.returncode == 0


def podman_run_of(name, service, stage, ports, names):
    """The Service to start for compose's `service` (and its image's stage) with `ports`."""
    options = [f"--add-host={other}:127.0.0.1" for other in names]
    env = service_env(service)
    for key, value in stage.env.items():  # the image's own ports move too
        if key not in env and value is not None and remap(value, ports) != value:
            env[key] = value
    options += [f"--env={key}={remap(value, ports)}" for key, value in env.items()]
    for spec in service.get("volumes", []):
        source, target, mount_options = mount(spec)
        if source.startswith("."):
            source = str((COMPOSE.parent / source).resolve())
            assert Path(source).exists(), f"{name} mounts {source}, which is missing (make models)"
        options.append("--volume=" + ":".join(
            [source, target, *([",".join(mount_options)] if mount_options else [])]))
    if service.get("read_only"):
        options.append("--read-only")
    options += [f"--tmpfs={path}" for path in service.get("tmpfs", [])]
    if service.get("user"):
        options.append(f"--user={service['user']}")
    test = healthcheck_test(service, stage)
    if test is not None:
        test = [test[0], *(remap(part, ports) for part in test[1:])]
        timeout = seconds((service.get("healthcheck") or {}).get("timeout"), 30)
        # podman 4 takes a command as a JSON array without compose's "CMD" (with it, podman
        # splits the arguments at spaces), a shell's as a string. No timer (there is no
        # systemd here): the test runs the check itself.
        cmd = json.dumps(test[1:]) if test[0] == "CMD" else test[1]
        options += [f"--health-cmd={cmd}", "--health-interval=disable",
                    f"--health-timeout={int(timeout)}s"]
    command = service.get("command", stage.cmd or [])
    if isinstance(command, str):
        command = shlex.split(command)  # as compose splits a string
    return Service(name, service["image"], options, [remap(arg, ports) for arg in command],
                   test)


class Stack:
    """compose.yaml's services, started with podman run on the host's network (see above)."""

    def __init__(self, compose, stages):
        self.ports = choose_ports()
        services = compose["services"]
        self.order = start_order(services)
        self.depends_on = {name: depends_on(services[name]) for name in self.order}
        self.services = {
            name: podman_run_of(name, services[name], stages[services[name]["build"]["target"]],
                                self.ports, self.order)
            for name in self.order}
        self.started = []

    def port(self, default):
        return self.ports[default]

    def url(self, default_port, path=""):
        return f"http://127.0.0.1:{self.ports[default_port]}{path}"

    def up(self, timeout=START_TIMEOUT_S):
        """Starts every service once what it depends on is started or healthy; returns when
        all are healthy."""
        for service in self.services.values():
            missing = podman("image", "exists", service.image, check=False)
            assert missing.returncode == 0, f"no image {service.image}: run `make image`"
        healthy, pending = set(), list(self.order)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in list(pending):
                ready = all(dependency in healthy if condition == "service_healthy"
                            else dependency not in pending
                            for dependency, condition in self.depends_on[name].items())
                if ready:
                    self.start(name)
                    pending.remove(name)
            for service in self.services.values():
                if service.container and service.name not in healthy and service.healthy():
                    healthy.add(service.name)
            if not pending and len(healthy) == len(self.services):
                return
            time.sleep(0.5)
        raise AssertionError(f"after {timeout} s healthy: {sorted(healthy)}, not started:"
                             f" {pending}\n{self.logs()}")

    def start(self, name):
        service = self.services[name]
        container_name = f"modeld-compose-{name}-{self.ports[8000]}"
        service.container = Container(service.image, service.args, service.run_options,
                                      name=container_name)
        self.started.append(service.container)

    def logs(self, tail=40, only=None):
        parts = []
        for name, service in self.services.items():
            if service.container and only in (None, name):
                lines = service.container.logs().splitlines()[-tail:]
                parts.append(f"--- {name} (last {tail} lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    def close(self):
        for container in reversed(self.started):
            container.close()


@pytest.fixture(scope="module")
def stack(compose, stages):
    stack = Stack(compose, stages)
    try:
        stack.up()
        yield stack
    finally:
        stack.close()


def get(url, opener=None, timeout=10):
    with (opener or urllib.request.build_opener()).open(url, timeout=timeout) as response:
        return response.status, response.geturl(), response.read().decode()


def post_form(opener, url, fields, timeout=20):
    """POSTs a form (following a redirect): the status, the final URL and the page, also
    for an error status."""
    data = urllib.parse.urlencode(fields).encode()
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=timeout) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.geturl(), error.read().decode(errors="replace")


def post_json(url, body, timeout=20):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def csrf_session(url):
    """An opener with the page's CSRF cookie, and the form's token."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, _, page = get(url, opener)
    assert status == 200, status
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, f"no CSRF token on {url}"
    return opener, token.group(1)


def metric(text, name):
    """The value of an unlabelled series `name` in Prometheus text, or None."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def modeld_predict(stack, rows):
    import modeld  # the package of python/, installed in the venv by make build

    with modeld.Client(stack.url(8000), timeout=10) as client:
        return client.predict("linear", rows).tolist()


def test_modeld_is_ready_with_both_brokers(stack):
    assert http_status(stack.url(8000, "/v2/health/ready")) == 200
    _, _, metrics = get(stack.url(8000, "/metrics"))
    assert metric(metrics, "modeld_amqp_connected") == 1, stack.logs()
    assert metric(metrics, "modeld_celery_connected") == 1, stack.logs()


def test_the_demo_page_answers(stack):
    status, _, page = get(stack.url(8080, "/"))
    assert status == 200
    assert "<h1>modeld demo</h1>" in page
    assert f"grpc://modeld:{stack.port(8001)}" in page, "the page does not name modeld's URL"
    assert http_status(stack.url(8080, "/healthz")) == 200


def test_the_demo_predicts_through_modeld(stack):
    expected = modeld_predict(stack, [LINEAR_INPUT])[0]
    assert expected == [LINEAR_OUTPUT]
    # The page's form, as a browser posts it.
    opener, token = csrf_session(stack.url(8080, "/"))
    status, _, page = post_form(opener, stack.url(8080, "/"), {
        "csrfmiddlewaretoken": token, "model": "linear",
        "inputs": ", ".join(f"{x:g}" for x in LINEAR_INPUT)})
    assert status == 200, f"the form answered {status}:\n{page[-2000:]}\n{stack.logs(only='demo')}"
    assert 'id="prediction" data-model="linear"' in page, page[-2000:]
    values = re.findall(r'<li data-value="([^"]+)">', page)
    assert [float(v) for v in values] == expected, values
    # The JSON API.
    answer = post_json(stack.url(8080, "/api/predict/linear"), {"inputs": LINEAR_INPUT})
    assert answer["outputs"] == expected, answer


def test_a_batch_goes_through_celery_to_modeld(stack):
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1.5, 0.25, 7.0]]
    opener, token = csrf_session(stack.url(8080, "/batch/"))
    status, job_url, page = post_form(opener, stack.url(8080, "/batch/"), {
        "csrfmiddlewaretoken": token, "model": "linear", "source": "paste",
        "pasted": "\n".join(", ".join(f"{x:g}" for x in row) for row in rows),
        "chunk_size": "2"})
    assert status == 200 and "/batch/" in job_url and job_url != stack.url(8080, "/batch/"), (
        f"the batch was not queued ({status} {job_url}):\n{page[-2000:]}\n"
        f"{stack.logs(only='demo')}")
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while True:
        _, _, body = get(job_url + "progress", opener)
        progress = json.loads(body)
        if progress["finished"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert progress["finished"], f"not finished in {BATCH_TIMEOUT_S} s: {progress}\n{stack.logs()}"
    assert (progress["total"], progress["succeeded"], progress["failed"]) == (2, 2, 0), progress
    assert progress["outputs"] == modeld_predict(stack, rows), progress["outputs"]


def test_a_request_through_rabbitmq_reaches_modeld(stack, compose):
    import modeld

    def acked():
        _, _, metrics = get(stack.url(8000, "/metrics"))
        return metric(metrics, "modeld_amqp_messages_acked_total") or 0

    before = acked()
    # The user and vhost of modeld's --amqp-url, on the (remapped) port of the host.
    flags = parse_flags(compose["services"]["modeld"]["command"])
    url = urllib.parse.urlsplit(flags["--amqp-url"])
    queue = flags.get("--amqp-queue", "modeld.requests")
    client_url = (f"amqp://{url.username}:{url.password}@127.0.0.1:{stack.port(5672)}"
                  f"{url.path}?queue={queue}")
    with modeld.Client(client_url, timeout=10) as client:
        assert client.predict("linear", [LINEAR_INPUT]).tolist() == [[LINEAR_OUTPUT]]
    # modeld acknowledges the request once its reply is confirmed, which may be just after
    # the client has the reply.
    deadline = time.monotonic() + 10
    while acked() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert acked() >= before + 1, "modeld did not acknowledge the AMQP request"
