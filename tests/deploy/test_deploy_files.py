"""The deployment files checked against the image they run: the Containerfile's `runtime`
stage (the stage `make image` tags as localhost/modeld:latest) is parsed, and

- deploy/kubernetes runs that image (modeld:latest, the tag without podman's localhost/), on
  the ports it EXPOSEs, as its USER, with a volume at its VOLUME holding --model-repository,
  modeld itself (the binary after "--" in its ENTRYPOINT), probes on the health endpoints of
  its HTTP port, a read-only root file system with /tmp writable;
- deploy/kserve holds (Cluster)ServingRuntimes for pytorch, tensorflow and onnx speaking V2
  (REST and gRPC) with that image, --model-repository=/mnt/models (where KServe's storage
  initializer puts the model), one declared port that modeld binds, the same user and
  probes, and an example InferenceService that names one of them;
- deploy/systemd/modeld.service starts the binaries where the image and `make install`
  put them (/opt/modeld/bin);
- every --flag any of them gives modeld is one `modeld --help` lists.

Each check is a function of the parsed files; test_each_check_can_fail runs it again on a
copy with one thing broken. test_deploy_units.py checks the files against each other
(drain timeouts, ConfigMap keys, the unit's hardening); deploy_files.py holds what both read
the files with.

Environment: MODELD_BINARY (default build/bin/modeld).
"""

import copy
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .deploy_files import (KSERVE, KUBERNETES, LIVE_PATH, READY_PATH, REPO_ROOT, container_ports,
                           load_documents, modeld_container, modeld_help_flags, of_kind,
                           parse_flags, port_of, read_exec_start, security_value,
                           split_exec_start, the_one)

CONTAINERFILE = REPO_ROOT / "Containerfile"
MAKEFILE = REPO_ROOT / "Makefile"
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the storageUri
KSERVE_CONTAINER = "kserve-container"  # the container KServe merges the predictor into
RUNTIME_KINDS = {"ServingRuntime", "ClusterServingRuntime"}
MODEL_FORMATS = {"pytorch", "tensorflow", "onnx"}
# Knative routes one port per revision, named for its protocol.
PORT_NAME_FOR_PROTOCOL = {"v2": "http1", "grpc-v2": "h2c"}


# ----------------------------------------------------------------------------- Containerfile


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # the rest of the instruction, continuation lines joined
    line: int


@dataclass
class ImageConfig:
    """What a stage leaves in the image's config (inherited from an earlier stage it is
    built FROM)."""

    user: str | None = None
    expose: list = field(default_factory=list)  # ints, in order
    volumes: list = field(default_factory=list)
    entrypoint: list | None = None
    cmd: list | None = None
    healthcheck: list | None = None  # the command; ["NONE"] when turned off
    healthcheck_options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)


HEREDOC_RE = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$")
VARIABLE_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_instructions(text):
    """Containerfile text -> [Instruction]: comments dropped, escaped line ends joined
    (comment lines inside a continuation are dropped, as podman and docker do), heredoc
    bodies (RUN <<EOF ... EOF) kept with their instruction."""
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives: only at the very top
        match = DIRECTIVE_RE.match(line)
        if not match:
            break
        if match.group(1).lower() == "escape":
            escape = match.group(2)
    instructions = []
    index = 0
    while index < len(lines):
        start = index + 1
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text_so_far = line.rstrip()
        while text_so_far.endswith(escape) and index < len(lines):
            text_so_far = text_so_far[: -len(escape)]
            following = lines[index]
            index += 1
            if following.lstrip().startswith("#"):
                text_so_far += escape  # still continued
                continue
            text_so_far += following.rstrip() if following.strip() else escape
        if text_so_far.endswith(escape):
            text_so_far = text_so_far[: -len(escape)]
        keyword, _, args = text_so_far.strip().partition(" ")
        keyword = keyword.upper()
        if keyword in ("RUN", "COPY", "ADD"):
            for strip_tabs, _, delimiter in HEREDOC_RE.findall(args):
                body = []
                while index < len(lines):
                    body_line = lines[index]
                    index += 1
                    candidate = body_line.lstrip("\t") if strip_tabs else body_line
                    if candidate == delimiter:
                        break
                    body.append(body_line)
                args += "\n" + "\n".join(body)
        instructions.append(Instruction(keyword, args.strip(), start))
    return instructions


def substitute(value, variables):
    """$VAR, ${VAR}, ${VAR:-word}, ${VAR:+word}, as a Containerfile expands them."""

    def replace(match):
        name = match.group(1) or match.group(4)
        current = variables.get(name)
        if match.group(2) == "-":
            return current if current else match.group(3)
        if match.group(2) == "+":
            return match.group(3) if current else ""
        return current or ""

    return VARIABLE_RE.sub(replace, value)


def command_form(args):
    """ENTRYPOINT / CMD / HEALTHCHECK CMD arguments -> argv (exec form, or the shell's)."""
    if args.startswith("["):
        try:
            argv = json.loads(args)
        except json.JSONDecodeError:
            argv = None
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            return argv
    return ["/bin/sh", "-c", args]


def key_values(args, variables):
    """ENV / ARG arguments -> {key: value}: KEY=VALUE pairs (quoted values allowed), the old
    `ENV KEY VALUE` form, or an ARG's bare KEY (value None)."""
    if "=" not in args.split(None, 1)[0]:
        key, _, value = args.partition(" ")
        return {key: substitute(value.strip(), variables) if value.strip() else None}
    pairs = {}
    for token in shlex.split(args):
        key, _, value = token.partition("=")
        pairs[key] = substitute(value, variables) if "=" in token else None
    return pairs


def parse_stages(text):
    """Containerfile text -> {stage name (or index): ImageConfig}, in order."""
    global_args = {}
    stages = {}
    config = None
    variables = {}
    cmd_set = False
    for instruction in parse_instructions(text):
        keyword, args = instruction.keyword, instruction.args
        if keyword == "FROM":
            tokens = [t for t in substitute(args, global_args).split() if not t.startswith("--")]
            base = tokens[0]
            name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else str(len(stages))
            parent = stages.get(base) or stages.get(base.lower())
            config = copy.deepcopy(parent) if parent else ImageConfig()
            stages[name.lower()] = config
            variables = dict(config.env)
            cmd_set = False
            continue
        if config is None:
            if keyword == "ARG":
                global_args.update({k: v or "" for k, v in key_values(args, global_args).items()})
            continue
        if keyword == "ARG":
            for key, value in key_values(args, variables).items():
                variables[key] = value if value is not None else global_args.get(key, "")
        elif keyword == "ENV":
            pairs = key_values(args, variables)
            config.env.update(pairs)
            variables.update(pairs)
        elif keyword == "USER":
            config.user = substitute(args, variables).strip()
        elif keyword == "EXPOSE":
            for port in substitute(args, variables).split():
                config.expose.append(int(port.split("/")[0]))
        elif keyword == "VOLUME":
            value = substitute(args, variables).strip()
            paths = json.loads(value) if value.startswith("[") else value.split()
            config.volumes.extend(paths)
        elif keyword == "ENTRYPOINT":
            config.entrypoint = command_form(args)
            if not cmd_set:  # an ENTRYPOINT drops the CMD a base image set
                config.cmd = None
        elif keyword == "CMD":
            config.cmd = command_form(args)
            cmd_set = True
        elif keyword == "HEALTHCHECK":
            tokens = args.split(None)
            options = {}
            while tokens and tokens[0].startswith("--"):
                key, _, value = tokens.pop(0)[2:].partition("=")
                options[key] = value
            rest = args.split(None, len(options))[-1] if options else args
            if rest.strip().upper() == "NONE":
                config.healthcheck, config.healthcheck_options = ["NONE"], {}
            else:
                word, _, command = rest.strip().partition(" ")
                assert word.upper() == "CMD", (
                    f"Containerfile:{instruction.line}: HEALTHCHECK without CMD")
                config.healthcheck = command_form(command.strip())
                config.healthcheck_options = options
    return stages


def makefile_variable(name, depth=0):
    """A `NAME ?= value` (or := / =) assignment in the Makefile, with the $(OTHER) variables
    it refers to expanded."""
    match = re.search(rf"^{name}\s*[?:]?=\s*(\S+)\s*$", MAKEFILE.read_text(encoding="utf-8"),
                      re.MULTILINE)
    if not match or depth > 8:
        return None
    return re.sub(r"\$\((\w+)\)", lambda m: makefile_variable(m.group(1), depth + 1) or "",
                  match.group(1))


def image_target_stage():
    """The --target of the `make image` command that tags $(IMAGE) (default: runtime)."""
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and re.search(r"-t\s+\$\(IMAGE\)(\s|$)", line):
            match = re.search(r"--target[= ](\S+)", line)
            if match:
                return match.group(1)
    return "runtime"


@dataclass
class Image:
    """The contract deploy files are checked against."""

    name: str  # how a cluster names it: `make image`'s tag without podman's localhost/
    config: ImageConfig

    @property
    def uid_gid(self):
        user, _, group = self.config.user.partition(":")
        return int(user), int(group or user)

    @property
    def modeld(self):
        """The modeld binary's path: after "--" in the ENTRYPOINT, or the ENTRYPOINT itself."""
        argv = self.config.entrypoint
        return argv[argv.index("--") + 1] if "--" in argv else argv[0]

    @property
    def cmd_flags(self):
        return parse_flags(self.config.cmd or [])

    @property
    def http_port(self):
        return port_of(self.cmd_flags["--http-address"])[1]

    @property
    def grpc_port(self):
        return port_of(self.cmd_flags["--grpc-address"])[1]


@pytest.fixture(scope="module")
def image():
    assert CONTAINERFILE.is_file(), f"{CONTAINERFILE} is missing"
    tag = makefile_variable("IMAGE")
    assert tag, "the Makefile sets no IMAGE (the tag `make image` builds)"
    stages = parse_stages(CONTAINERFILE.read_text(encoding="utf-8"))
    stage = image_target_stage()
    assert stage in stages, (
        f"`make image` builds --target {stage}, not a stage of the Containerfile")
    return Image(name=re.sub(r"^localhost/", "", tag), config=stages[stage])


# ----------------------------------------------------------------------------- helpers


def documents_under(folder):
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in load_documents(path)]


@pytest.fixture(scope="module")
def modeld_flags():
    return modeld_help_flags()


@pytest.fixture(scope="module")
def deployment():
    return the_one(documents_under(KUBERNETES), "Deployment", KUBERNETES)


@pytest.fixture(scope="module")
def service():
    return the_one(documents_under(KUBERNETES), "Service", KUBERNETES)


@pytest.fixture(scope="module")
def runtimes():
    found = of_kind(documents_under(KSERVE), RUNTIME_KINDS)
    assert found, f"no ServingRuntime or ClusterServingRuntime in {KSERVE}"
    return found


@pytest.fixture(scope="module")
def inference_services():
    found = of_kind(documents_under(KSERVE), {"InferenceService"})
    assert found, f"no example InferenceService in {KSERVE}"
    return found


def kserve_container(runtime):
    containers = runtime["spec"]["containers"]
    assert containers and containers[0].get("name") == KSERVE_CONTAINER, (
        f"{runtime['metadata']['name']}: containers[0] must be named {KSERVE_CONTAINER}")
    return containers[0]


# ----------------------------------------------------------------------------- checks
# Each takes parsed files (and the image), asserts, returns nothing.


def check_image_contract(image):
    """The Containerfile's runtime stage, against itself."""
    config = image.config
    assert config.user and re.fullmatch(r"\d+(:\d+)?", config.user), (
        f"USER {config.user!r}: numeric uid:gid, so that runAsNonRoot can verify it")
    assert all(n > 0 for n in image.uid_gid), f"USER {config.user} is root"
    assert config.entrypoint, "the runtime stage has no ENTRYPOINT"
    assert Path(image.modeld).name == "modeld" and image.modeld.startswith("/"), config.entrypoint
    assert config.volumes, "the runtime stage declares no VOLUME"
    flags = image.cmd_flags
    assert flags.get("--model-repository") in config.volumes, (
        f"CMD's --model-repository={flags.get('--model-repository')} is not a VOLUME"
        f" {config.volumes}")
    for flag in ("--http-address", "--grpc-address"):
        assert flag in flags, f"CMD does not set {flag}"
        host, port = port_of(flags[flag])
        assert host == "0.0.0.0", f"CMD's {flag}={flags[flag]}: a container listens beyond loopback"
        assert port in config.expose, f"CMD's {flag} port {port} is not EXPOSEd: {config.expose}"
    assert sorted(config.expose) == sorted({image.http_port, image.grpc_port}), (
        f"EXPOSE {config.expose} is not exactly the HTTP and gRPC ports")
    assert config.healthcheck and config.healthcheck != ["NONE"], "no HEALTHCHECK"
    # The check runs with the image's ENV (its port may come from MODELD_HEALTHCHECK_PORT).
    command = substitute(" ".join(config.healthcheck), config.env)
    assert READY_PATH in command, f"the HEALTHCHECK does not ask {READY_PATH}: {command}"
    assert re.search(rf"\b{image.http_port}\b", command), (
        f"the HEALTHCHECK does not ask the HTTP port {image.http_port}: {command}")


def check_image_flags(image, known):
    unknown = sorted(set(image.cmd_flags) - known)
    assert not unknown, f"the image's CMD passes flags modeld does not know: {unknown}"


def check_deployment_image(deployment, image):
    container = modeld_container(deployment)
    assert container.get("image") == image.name, (
        f"the Deployment runs {container.get('image')!r}, `make image` builds {image.name!r}")
    assert container.get("imagePullPolicy") == "IfNotPresent", (
        "imagePullPolicy must be IfNotPresent: a :latest image loaded into the nodes is never"
        " pulled")


def check_deployment_runs_modeld(deployment, image):
    command = modeld_container(deployment).get("command")
    assert command, (
        "the Deployment does not set command: the image's ENTRYPOINT would run the supervisor")
    assert command == [image.modeld], (
        f"command {command} is not the image's modeld {image.modeld} (from its ENTRYPOINT)")


def check_deployment_ports(deployment, image):
    container = modeld_container(deployment)
    declared = sorted(p["containerPort"] for p in container.get("ports", []))
    assert declared == sorted(image.config.expose), (
        f"the container declares ports {declared}, the image EXPOSEs {image.config.expose}")
    ports = container_ports(container)
    assert ports.get("http") == image.http_port and ports.get("grpc") == image.grpc_port, (
        f"ports http/grpc are {ports.get('http')}/{ports.get('grpc')}, the image's"
        f" {image.http_port}/{image.grpc_port}")
    flags = parse_flags(container.get("args", []))
    for flag, name in (("--http-address", "http"), ("--grpc-address", "grpc")):
        assert flag in flags, f"the Deployment's args do not set {flag}"
        assert port_of(flags[flag]) == ("0.0.0.0", ports[name]), (
            f"{flag}={flags[flag]} is not 0.0.0.0 on the port named {name}")


def check_service_ports(service, image):
    numbers = sorted(p["port"] for p in service["spec"]["ports"])
    assert numbers == sorted(image.config.expose), (
        f"the Service offers ports {numbers}, the image EXPOSEs {image.config.expose}")


def check_deployment_user(deployment, image):
    pod = deployment["spec"]["template"]["spec"]
    container = modeld_container(deployment)
    uid, gid = image.uid_gid
    assert security_value(container, pod, "runAsUser") == uid, f"runAsUser is not the image's {uid}"
    assert security_value(container, pod, "runAsGroup") == gid, (
        f"runAsGroup is not the image's {gid}")
    assert security_value(container, pod, "runAsNonRoot") is True, "runAsNonRoot must be true"


def check_writable_tmp_only(container, volumes):
    """readOnlyRootFilesystem, and /tmp (the image's HOME) an emptyDir."""
    assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True, (
        "readOnlyRootFilesystem must be true: modeld writes nothing but /tmp")
    by_name = {v["name"]: v for v in volumes}
    tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    assert tmp, "nothing is mounted at /tmp; with a read-only root the frameworks cannot write"
    assert "emptyDir" in by_name.get(tmp[0]["name"], {}), "/tmp is not an emptyDir volume"


def check_deployment_storage(deployment, image):
    pod = deployment["spec"]["template"]["spec"]
    container = modeld_container(deployment)
    check_writable_tmp_only(container, pod.get("volumes", []))
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volume_path = image.config.volumes[0]
    assert volume_path in mounts, f"no volume is mounted at the image's VOLUME {volume_path}"
    repository = parse_flags(container.get("args", [])).get("--model-repository")
    assert repository == volume_path, (
        f"--model-repository={repository} is not the image's VOLUME {volume_path}")


def check_probes(container, http_port, expected):
    """expected: {probe name: (paths...)}; each must be an httpGet on modeld's HTTP port."""
    ports = container_ports(container)
    for name, paths in expected.items():
        probe = container.get(name)
        assert probe is not None, f"{container['name']} has no {name}"
        get = probe.get("httpGet")
        assert get is not None, f"{name} is not an httpGet probe"
        assert get.get("path") in paths, f"{name} asks {get.get('path')}, not {paths}"
        port = ports.get(get.get("port"), get.get("port"))
        assert port == http_port, f"{name} asks port {get.get('port')}, not HTTP's {http_port}"


def check_deployment_probes(deployment, image):
    check_probes(modeld_container(deployment), image.http_port,
                 {"readinessProbe": (READY_PATH,), "livenessProbe": (LIVE_PATH,),
                  "startupProbe": (READY_PATH, LIVE_PATH)})


def check_flags_known(args, known, where):
    unknown = sorted(set(parse_flags(args)) - known)
    assert not unknown, f"{where} passes flags modeld --help does not list: {unknown}"


def check_runtime(runtime, image):
    name = runtime["metadata"]["name"]
    assert runtime["kind"] in RUNTIME_KINDS, runtime["kind"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1", runtime["apiVersion"]
    spec = runtime["spec"]
    formats = spec.get("supportedModelFormats", [])
    names = {f["name"] for f in formats}
    assert MODEL_FORMATS <= names, f"{name} lacks model formats {sorted(MODEL_FORMATS - names)}"
    for entry in formats:
        assert isinstance(entry.get("version"), str) and entry["version"], (
            f"{name}: format {entry['name']} has no version string")
    protocols = spec.get("protocolVersions", [])
    assert protocols and set(protocols) <= set(PORT_NAME_FOR_PROTOCOL), (
        f"{name} speaks {protocols}; modeld speaks V2 (v2, grpc-v2) only")

    container = kserve_container(runtime)
    assert container.get("image") == image.name, (
        f"{name} runs {container.get('image')!r}, `make image` builds {image.name!r}")
    assert container.get("command") in (None, [image.modeld]), (
        f"{name}: command {container.get('command')} is not the image's modeld {image.modeld}")
    flags = parse_flags(container.get("args", []))
    assert flags.get("--model-repository") == KSERVE_MODEL_DIR, (
        f"{name}: --model-repository={flags.get('--model-repository')}, KServe puts models in"
        f" {KSERVE_MODEL_DIR}")
    bound = {}
    for flag, kind in (("--http-address", "http"), ("--grpc-address", "grpc")):
        assert flag in flags, f"{name} does not set {flag}"
        host, port = port_of(flags[flag])
        assert host == "0.0.0.0", f"{name}: {flag}={flags[flag]} is not reachable from the pod's IP"
        bound[kind] = port
    ports = container.get("ports", [])
    # Knative routes exactly one declared port: HTTP/1 (http1) or gRPC (h2c).
    assert len(ports) == 1, f"{name} declares {len(ports)} ports; Knative routes exactly one"
    port = ports[0]
    expected_names = {PORT_NAME_FOR_PROTOCOL[p] for p in protocols}
    assert port.get("name") in expected_names, (
        f"{name}: port named {port.get('name')!r} for protocols {protocols}")
    expected_port = bound["http"] if port["name"] == "http1" else bound["grpc"]
    assert port["containerPort"] == expected_port, (
        f"{name}: port {port['name']} is {port['containerPort']}, modeld binds {expected_port}")

    uid, gid = image.uid_gid
    assert security_value(container, None, "runAsUser") == uid, f"{name}: runAsUser is not {uid}"
    assert security_value(container, None, "runAsGroup") == gid, f"{name}: runAsGroup is not {gid}"
    assert security_value(container, None, "runAsNonRoot") is True, f"{name}: runAsNonRoot"
    check_writable_tmp_only(container, spec.get("volumes", []))
    check_probes(container, bound["http"],
                 {"readinessProbe": (READY_PATH,), "livenessProbe": (LIVE_PATH,)})
    requests = container.get("resources", {}).get("requests", {})
    assert {"cpu", "memory"} <= set(requests), f"{name}: no cpu and memory requests"


def check_runtimes_together(runtimes):
    protocols = {p for r in runtimes for p in r["spec"].get("protocolVersions", [])}
    assert {"v2", "grpc-v2"} <= protocols, (
        f"the runtimes speak {sorted(protocols)}, not v2 and grpc-v2")
    names = [r["metadata"]["name"] for r in runtimes]
    assert len(names) == len(set(names)), f"runtime names repeat: {names}"


def check_inference_service(isvc, runtimes):
    model = isvc["spec"]["predictor"]["model"]
    by_name = {r["metadata"]["name"]: r for r in runtimes}
    assert model.get("runtime") in by_name, (
        f"{isvc['metadata']['name']} names runtime {model.get('runtime')!r}, not one of"
        f" {sorted(by_name)}")
    spec = by_name[model["runtime"]]["spec"]
    formats = {f["name"] for f in spec["supportedModelFormats"]}
    assert model.get("modelFormat", {}).get("name") in formats, (
        f"modelFormat {model.get('modelFormat')} is not one runtime {model['runtime']} supports")
    assert model.get("protocolVersion") in spec["protocolVersions"], (
        f"protocolVersion {model.get('protocolVersion')!r} is not one runtime"
        f" {model['runtime']} speaks")
    assert re.match(r"^[a-z0-9]+://\S+", model.get("storageUri", "")), (
        f"storageUri {model.get('storageUri')!r} is not a URI")


def check_unit_layout(argv, image, prefix):
    supervisor_argv, modeld_argv = split_exec_start(argv)
    supervisor, modeld = supervisor_argv[0], modeld_argv[0]
    assert supervisor == image.config.entrypoint[0], (
        f"the unit starts {supervisor}, the image installs the supervisor at"
        f" {image.config.entrypoint[0]}")
    assert modeld == image.modeld, f"the unit starts {modeld}, the image's modeld is {image.modeld}"
    if prefix is not None:
        for path in (supervisor, modeld):
            assert Path(path).parent == Path(prefix) / "bin", (
                f"{path} is not in {prefix}/bin, where `make install` puts it")


# ----------------------------------------------------------------------------- tests


def test_parser_reads_continuations_stages_and_variables():
    text = r"""# escape=\
ARG BASE=debian:bookworm-slim
ARG PORT=8000
FROM ${BASE} AS build
RUN <<EOF
echo "USER 0 in a heredoc is not an instruction"
EXPOSE 1
EOF
FROM ${BASE} AS base
ENTRYPOINT ["/bin/base"]
CMD ["--from-base"]
EXPOSE 9000
FROM base AS runtime
ARG PORT
ENV DIR=/models HOME=/tmp
USER 10001:\
# a comment inside the continuation
10001
VOLUME ["${DIR}"]
expose ${PORT}/tcp \
       8001
HEALTHCHECK --interval=10s --timeout=3s \
  CMD curl -fsS http://127.0.0.1:${PORT}/v2/health/ready
ENTRYPOINT ["/opt/modeld/bin/modeld-supervisor", "--", "/opt/modeld/bin/modeld"]
FROM base AS other
"""
    stages = parse_stages(text)
    assert list(stages) == ["build", "base", "runtime", "other"]
    runtime = stages["runtime"]
    assert runtime.user == "10001:10001"
    assert runtime.volumes == ["/models"]
    assert runtime.expose == [9000, 8000, 8001]  # inherited, then its own
    assert runtime.entrypoint[-1] == "/opt/modeld/bin/modeld"
    assert runtime.cmd is None  # its ENTRYPOINT drops the base's CMD
    assert runtime.healthcheck == [  # shell form: the shell expands $PORT, not the parser
        "/bin/sh", "-c", "curl -fsS http://127.0.0.1:${PORT}/v2/health/ready"]
    assert runtime.healthcheck_options == {"interval": "10s", "timeout": "3s"}
    assert stages["build"].user is None and stages["build"].expose == []
    assert stages["other"].cmd == ["--from-base"] and stages["other"].user is None


def test_the_image_contract(image):
    check_image_contract(image)


def test_the_image_passes_modeld_flags_it_knows(image, modeld_flags):
    check_image_flags(image, modeld_flags)


def test_kubernetes_runs_the_image(deployment, image):
    check_deployment_image(deployment, image)


def test_kubernetes_runs_modeld_from_the_image(deployment, image):
    check_deployment_runs_modeld(deployment, image)


def test_kubernetes_ports_are_the_images(deployment, service, image):
    check_deployment_ports(deployment, image)
    check_service_ports(service, image)


def test_kubernetes_runs_as_the_images_user(deployment, image):
    check_deployment_user(deployment, image)


def test_kubernetes_mounts_the_repository_at_the_images_volume(deployment, image):
    check_deployment_storage(deployment, image)


def test_kubernetes_probes_the_health_endpoints(deployment, image):
    check_deployment_probes(deployment, image)


def test_kubernetes_flags_are_known(deployment, modeld_flags):
    check_flags_known(modeld_container(deployment).get("args", []), modeld_flags, "the Deployment")


def test_kserve_runtimes(runtimes, image):
    for runtime in runtimes:
        check_runtime(runtime, image)
    check_runtimes_together(runtimes)


def test_kserve_flags_are_known(runtimes, modeld_flags):
    for runtime in runtimes:
        check_flags_known(kserve_container(runtime).get("args", []), modeld_flags,
                          f"runtime {runtime['metadata']['name']}")


def test_kserve_example_uses_a_runtime(inference_services, runtimes):
    for isvc in inference_services:
        check_inference_service(isvc, runtimes)


def test_systemd_starts_the_installed_binaries(image):
    check_unit_layout(read_exec_start(), image, makefile_variable("PREFIX"))


def test_systemd_flags_are_known(modeld_flags):
    _, modeld = split_exec_start(read_exec_start())
    check_flags_known(modeld[1:], modeld_flags, "the systemd unit")


# ----------------------------------------------------------------------------- each check can fail
# A world is a copy of everything the checks read; a breakage changes one thing in it.

KNOWN_FLAGS = {"--model-repository", "--http-address", "--grpc-address", "--drain-timeout-seconds",
               "--model-control-mode", "--repository-poll-secs", "--watchdog-seconds",
               "--log-level"}  # stands in for modeld --help, which this part does not need


def _deployment_container(world):
    return modeld_container(world["deployment"])


def _runtime_container(world):
    return kserve_container(world["runtimes"][0])


def _isvc_model(world):
    return world["isvc"]["spec"]["predictor"]["model"]


def _set_arg(container, flag, value):
    args = [a for a in container["args"] if not a.startswith(flag + "=")]
    container["args"] = args + [f"{flag}={value}"]


def _check_image(world):
    check_image_contract(world["image"])


def _check_image_flags(world):
    check_image_flags(world["image"], KNOWN_FLAGS)


def _check_deployment(world):
    image, deployment = world["image"], world["deployment"]
    for check in (check_deployment_image, check_deployment_runs_modeld, check_deployment_ports,
                  check_deployment_user, check_deployment_storage, check_deployment_probes):
        check(deployment, image)
    check_service_ports(world["service"], image)
    check_flags_known(_deployment_container(world)["args"], KNOWN_FLAGS, "the Deployment")


def _check_kserve(world):
    for runtime in world["runtimes"]:
        check_runtime(runtime, world["image"])
        check_flags_known(kserve_container(runtime)["args"], KNOWN_FLAGS, "a runtime")
    check_runtimes_together(world["runtimes"])
    check_inference_service(world["isvc"], world["runtimes"])


def _check_unit(world):
    check_unit_layout(world["unit"], world["image"], "/opt/modeld")


def _image_user(user):
    return lambda world: setattr(world["image"].config, "user", user)


def _deployment_arg(flag, value):
    return lambda world: _set_arg(_deployment_container(world), flag, value)


def _runtime_arg(flag, value):
    return lambda world: _set_arg(_runtime_container(world), flag, value)


def _deployment_field(*path, value):
    """Sets a field of the Deployment's modeld container (path of keys, then the value)."""
    def mutate(world):
        node = _deployment_container(world)
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _runtime_field(*path, value):
    def mutate(world):
        node = _runtime_container(world)
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _without_onnx(world):
    spec = world["runtimes"][0]["spec"]
    formats = spec["supportedModelFormats"]
    spec["supportedModelFormats"] = [f for f in formats if f["name"] != "onnx"]


def _move_models_mount(world):
    for mount in _deployment_container(world)["volumeMounts"]:
        if mount["mountPath"] == world["image"].config.volumes[0]:
            mount["mountPath"] = "/srv"


BREAKAGES = {
    # name: (what changes, the checks that must then fail)
    "image user is root": (_image_user("0:0"), _check_image),
    "image user is a name": (_image_user("modeld"), _check_image),
    "image healthcheck asks live": (
        lambda w: setattr(w["image"].config, "healthcheck",
                          ["curl", f"http://127.0.0.1:8000{LIVE_PATH}"]),
        _check_image),
    "image exposes another port": (lambda w: w["image"].config.expose.append(9999), _check_image),
    "image repository not a volume": (
        lambda w: setattr(w["image"].config, "volumes", ["/data"]), _check_image),
    "image flag unknown": (
        lambda w: w["image"].config.cmd.append("--no-such-flag"), _check_image_flags),
    "deployment image": (
        _deployment_field("image", value="localhost/modeld:latest"), _check_deployment),
    "deployment pull policy": (
        _deployment_field("imagePullPolicy", value="Always"), _check_deployment),
    "deployment supervisor": (
        _deployment_field("command", value=["/opt/modeld/bin/modeld-supervisor"]),
        _check_deployment),
    "deployment no command": (lambda w: _deployment_container(w).pop("command"), _check_deployment),
    "deployment port": (
        _deployment_field("ports", 0, "containerPort", value=9001), _check_deployment),
    "deployment address": (_deployment_arg("--http-address", "0.0.0.0:9000"), _check_deployment),
    "service port": (lambda w: w["service"]["spec"]["ports"][0].update(port=80), _check_deployment),
    "deployment pod user": (
        lambda w: w["deployment"]["spec"]["template"]["spec"]["securityContext"].update(
            runAsUser=1000),
        _check_deployment),
    "deployment container group": (
        _deployment_field("securityContext", "runAsGroup", value=0), _check_deployment),
    "deployment repository": (
        _deployment_arg("--model-repository", "/var/lib/modeld/models"), _check_deployment),
    "deployment nothing at VOLUME": (_move_models_mount, _check_deployment),
    "deployment writable root": (
        _deployment_field("securityContext", "readOnlyRootFilesystem", value=False),
        _check_deployment),
    "deployment readiness asks live": (
        _deployment_field("readinessProbe", "httpGet", "path", value=LIVE_PATH), _check_deployment),
    "deployment liveness on grpc": (
        _deployment_field("livenessProbe", "httpGet", "port", value="grpc"), _check_deployment),
    "deployment flag unknown": (_deployment_arg("--no-such-flag", "1"), _check_deployment),
    "runtime kind": (lambda w: w["runtimes"][0].update(kind="Deployment"), _check_kserve),
    "runtime without onnx": (_without_onnx, _check_kserve),
    "runtime speaks v1": (
        lambda w: w["runtimes"][0]["spec"]["protocolVersions"].append("v1"), _check_kserve),
    "runtime image": (_runtime_field("image", value="modeld:other"), _check_kserve),
    "runtime container name": (_runtime_field("name", value="modeld"), _check_kserve),
    "runtime repository": (_runtime_arg("--model-repository", "/models"), _check_kserve),
    "runtime second port": (
        lambda w: _runtime_container(w)["ports"].append({"name": "h2c", "containerPort": 8081}),
        _check_kserve),
    "runtime port not bound": (
        _runtime_field("ports", 0, "containerPort", value=9000), _check_kserve),
    "runtime loopback": (_runtime_arg("--http-address", "127.0.0.1:8080"), _check_kserve),
    "runtime user": (_runtime_field("securityContext", "runAsUser", value=0), _check_kserve),
    "runtime probe port": (
        _runtime_field("readinessProbe", "httpGet", "port", value=8081), _check_kserve),
    "runtime no tmp": (_runtime_field("volumeMounts", value=[]), _check_kserve),
    "runtime flag unknown": (_runtime_arg("--model_dir", "/mnt/models"), _check_kserve),
    "runtimes without grpc": (lambda w: w["runtimes"].pop(), _check_kserve),
    "isvc runtime": (lambda w: _isvc_model(w).update(runtime="kserve-tritonserver"), _check_kserve),
    "isvc format": (lambda w: _isvc_model(w)["modelFormat"].update(name="sklearn"), _check_kserve),
    "isvc protocol": (lambda w: _isvc_model(w).update(protocolVersion="v1"), _check_kserve),
    "unit supervisor path": (
        lambda w: w["unit"].__setitem__(0, "/usr/local/bin/modeld-supervisor"), _check_unit),
    "unit modeld path": (
        lambda w: w["unit"].__setitem__(w["unit"].index("--") + 1, "/usr/bin/modeld"), _check_unit),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_check_can_fail(breakage, image, deployment, service, runtimes, inference_services):
    """The checks pass on a copy of the files as they are, and fail once one thing in the
    copy is broken: a check that cannot fail checks nothing."""
    mutate, check = BREAKAGES[breakage]
    world = {"image": image, "deployment": deployment, "service": service, "runtimes": runtimes,
             "isvc": inference_services[0], "unit": read_exec_start()}
    check(copy.deepcopy(world))  # as they are: passes, so the failure below is the breakage's
    broken = copy.deepcopy(world)
    mutate(broken)
    with pytest.raises(AssertionError):
        check(broken)
