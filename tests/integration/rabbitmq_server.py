"""rabbitmq-server for the tests: a private RabbitMQ node, a child process on free loopback ports.

Nothing of the system's RabbitMQ is used or disturbed (scripts/setup installs Debian's
rabbitmq-server, 3.10, and neither starts nor enables its service): each RabbitMQServer has a
temporary folder of its own for the database (mnesia), the logs and the configuration, a node
name of its own (modeld-test-<pid>-<n>@localhost), its own Erlang cookie ($HOME/.erlang.cookie
in that folder), no plugins, and its own ports: AMQP, AMQPS (tls=True), the node's distribution
port and an epmd of its own, started here and stopped by close(), so a system epmd on 4369 or a
system broker on 5672 neither matters nor is touched.

The node starts with the user USER (password PASSWORD, administrator) allowed everything on the
vhosts "/" and SECOND_VHOST (a definitions file the node loads at boot); fresh_vhost() adds one
more with rabbitmqctl. stop() / start() and kill() / start() keep the folder, the node name and
the ports: durable queues and persistent messages survive both. close() stops it for good and
removes the folder.

Used by the AMQP transport's end-to-end tests (through the `rabbitmq` fixture of conftest.py).
Needs only pika, not the generated messages.
"""

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions

from pki import make_pki
from redis_server import WAIT_S, wait_until  # noqa: F401  (re-exported)

# The scripts themselves, not the wrappers of /usr/sbin: run as root, those switch to the
# rabbitmq user with su, which drops the environment that makes the node private.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
USER = "modeld"
PASSWORD = "modeld-test-password"
SECOND_VHOST = "modeld-second"
START_TIMEOUT_S = 60.0

_numbers = itertools.count(1)


def installed():
    """Whether rabbitmq-server (and epmd, from erlang-base) are installed."""
    return (RABBITMQ_BIN / "rabbitmq-server").is_file() and shutil.which("epmd") is not None


def _free_ports(count):
    """`count` distinct free loopback ports (all held open until all are chosen)."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class RabbitMQServer:
    """A private RabbitMQ node on loopback ports (see the module's docstring).

    `tls`: also an AMQPS listener, with certificates made by pki.make_pki (`self.pki`; the
    server's certificate is for 127.0.0.1 and localhost, signed by `self.pki.ca`). Clients
    without a certificate are accepted; one that gives a certificate must have one signed by
    that CA.
    """

    def __init__(self, tls=False):
        self.directory = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
        self.nodename = f"modeld-test-{os.getpid()}-{next(_numbers)}@localhost"
        self.port, self.dist_port, self.epmd_port, self.tls_port = _free_ports(4)
        if not tls:
            self.tls_port = None
        self.pki = None
        self.proc = None
        self.start_s = None  # how long the last start() took, in seconds
        self._epmd = None
        self._log = open(self.directory / "rabbitmq-server.out", "ab")
        try:
            if tls:
                self.pki = make_pki(self._mkdir("pki"))
            self._configure()
            self._start_epmd()
            self.start()
        except BaseException:
            self.close()
            raise

    def _mkdir(self, name):
        path = self.directory / name
        path.mkdir()
        return path

    def _configure(self):
        d = self.directory
        cookie = d / ".erlang.cookie"
        cookie.write_text(os.urandom(24).hex())
        cookie.chmod(0o400)
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        (d / "definitions.json").write_text(json.dumps({
            "users": [{"name": USER, "password": PASSWORD, "tags": "administrator"}],
            "vhosts": [{"name": "/"}, {"name": SECOND_VHOST}],
            "permissions": [{"user": USER, "vhost": vhost, **permissions}
                            for vhost in ("/", SECOND_VHOST)],
        }))
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{self.port}",
            # The test user and vhosts (and no guest): loaded at every boot, so they are there
            # before the AMQP listener opens.
            f"load_definitions = {d / 'definitions.json'}",
            "loopback_users = none",
            # The alarms that block publishers: well above what tests hold, and a nearly full
            # disk must not block them either.
            "vm_memory_high_watermark.absolute = 1GB",
            "disk_free_limit.absolute = 50MB",
            "log.console = false",
            "log.file.level = info",
        ]
        if self.pki is not None:
            lines += [
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self.pki.ca}",
                f"ssl_options.certfile = {self.pki.path('server.crt')}",
                f"ssl_options.keyfile = {self.pki.path('server.key')}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        (d / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    @property
    def env(self):
        """The environment of the node and of rabbitmqctl for it."""
        d = self.directory
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(d),  # the cookie
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_CRASH_DUMP=str(d / "erl_crash.dump"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),  # none
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            # The distribution port on loopback only.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            # rabbitmqctl's own distribution port: any free one (not 35672-35682).
            RABBITMQ_CTL_DIST_PORT_MIN="0",
            RABBITMQ_CTL_DIST_PORT_MAX="0",
        )
        return env

    def _start_epmd(self):
        # In the foreground, as our child: the node finds it on ERL_EPMD_PORT and does not
        # start a daemon of its own, which would outlive the tests.
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

        def listens():
            if self._epmd.poll() is not None:
                raise AssertionError(f"epmd exited: {self.output()}")
            return _accepts(self.epmd_port)

        wait_until(listens, 10, f"epmd listening on {self.epmd_port}")

    def start(self):
        """Starts the node (again, on the same folder and ports); returns once the test user
        can open a connection to SECOND_VHOST."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        started = time.monotonic()
        # A session of its own: kill() takes the script, the VM and its helpers at once.
        self.proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, cwd=self.directory,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"rabbitmq-server exited with {self.proc.returncode}: {self.output()}\n"
                    f"{self.log_tail()}")
            if not _accepts(self.port):
                return False
            try:
                self.connection(vhost=SECOND_VHOST).close()
                return True
            except pika.exceptions.AMQPError:
                return False

        wait_until(answers, START_TIMEOUT_S, f"RabbitMQ node {self.nodename} accepting AMQP")
        self.start_s = time.monotonic() - started
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """A graceful stop: SIGTERM, which the script passes on to the node and the node takes
        as `rabbitmqctl stop` would (the queues are closed, the database written); SIGKILL after
        `timeout` seconds."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        """kill -9 of the node: the script, the Erlang VM and its helper processes (one process
        group). The ports are free again on return."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def close(self):
        """Stops the node and its epmd for good and removes the folder."""
        self.stop()
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.terminate()
            try:
                self._epmd.wait(10)
            except subprocess.TimeoutExpired:
                self._epmd.kill()
                self._epmd.wait()
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, user=USER, password=PASSWORD, vhost="/", tls=False):
        """amqp://user:password@127.0.0.1:port/vhost (amqps:// and the TLS port with tls=True;
        the client must trust self.pki.ca and may check the host name, 127.0.0.1)."""
        if tls:
            assert self.tls_port is not None, "started without tls=True"
        scheme, port = ("amqps", self.tls_port) if tls else ("amqp", self.port)
        return (f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"
                f"/{quote(vhost, safe='')}")

    def connection(self, vhost="/", user=USER, password=PASSWORD):
        """A pika BlockingConnection to `vhost` (plain AMQP)."""
        return pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password), connection_attempts=1,
            socket_timeout=WAIT_S, blocked_connection_timeout=WAIT_S))

    def rabbitmqctl(self, *args, timeout=60):
        """Runs rabbitmqctl against this node; returns its stdout (fails on a non-zero exit)."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args], env=self.env,
            cwd=self.directory, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} exited with "
                                 f"{result.returncode}: {result.stdout}{result.stderr}")
        return result.stdout

    def fresh_vhost(self, prefix="test"):
        """A new vhost, empty, on which USER may do everything; returns its name. One
        rabbitmqctl call (under a second): tests that only need queues of their own take
        fresh_name() instead."""
        name = fresh_name(prefix)
        definitions = self.directory / f"{name}.json"
        definitions.write_text(json.dumps({
            "vhosts": [{"name": name}],
            "permissions": [{"user": USER, "vhost": name, "configure": ".*", "write": ".*",
                             "read": ".*"}],
        }))
        self.rabbitmqctl("import_definitions", str(definitions))
        definitions.unlink()
        return name

    def output(self):
        """What the script and epmd printed (rabbitmq-server.out)."""
        self._log.flush()
        return (self.directory / "rabbitmq-server.out").read_text(errors="replace")

    def log_tail(self, lines=60):
        """The last lines of the node's own log."""
        log = self.directory / "log" / f"{self.nodename}.log"
        if not log.is_file():
            return f"(no {log})"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def fresh_name(prefix="test"):
    """A queue, exchange or vhost name no other test of this session (or xdist worker) uses."""
    return f"{prefix}-{os.getpid()}-{next(_numbers)}"

