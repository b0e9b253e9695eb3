"""The deployment files under deploy/: parsed and cross-checked, since neither systemd (as
PID 1) nor a Kubernetes cluster is available to the tests.

- Every YAML document is a Kubernetes object (apiVersion, kind, metadata.name).
- The Deployment runs modeld itself (not modeld-supervisor), binds the container's ports,
  probes /v2/health/ready and /v2/health/live on a port the container declares, outlives
  the drain timeout in terminationGracePeriodSeconds, has cpu/memory requests and limits,
  mounts the repository read-only, and uses every ConfigMap (every $(VAR) in its args
  resolves through `env` to a ConfigMap key that exists).
- The Service's ports target the container's ports and its selector matches the pods.
- The systemd unit: sections, ExecStart = modeld-supervisor [flags] -- modeld flags,
  TimeoutStopSec above the drain timeout, ExecReload sends SIGHUP, Restart set.
- Every --flag in the unit and the Deployment is one that `modeld --help` (and
  `modeld-supervisor --help`) lists, and every flag docs/operations.md names exists.

test_deploy_files.py checks the same files against the Containerfile's runtime stage;
deploy_files.py holds what both read the files with.

Environment: MODELD_BINARY (default build/bin/modeld), MODELD_SUPERVISOR_BINARY (default
build/bin/modeld-supervisor).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .deploy_files import (DEPLOY, KUBERNETES, LIVE_PATH, READY_PATH, REPO_ROOT, UNIT,
                           container_ports, help_flags, load_documents, modeld_container,
                           modeld_help_flags, of_kind, parse_flags, port_of, read_exec_start,
                           read_unit, security_value, split_exec_start, unit_command)
from .deploy_files import the_one as the_one_in

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
SUPERVISOR = Path(
    os.environ.get("MODELD_SUPERVISOR_BINARY", REPO_ROOT / "build" / "bin" / "modeld-supervisor")
)

DEFAULT_DRAIN_TIMEOUT_S = 30  # modeld's --drain-timeout-seconds default (src/service/options.h)
# The flags of modeld-supervisor, for docs/operations.md when the binary is not built.
SUPERVISOR_FLAGS = {
    "--backoff-initial-ms",
    "--backoff-max-ms",
    "--crash-loop-restarts",
    "--crash-loop-window-seconds",
}
# Flags docs/operations.md may name that belong to other programs.
FOREIGN_FLAGS = {"--load-model"}  # Triton's, in a comparison

VAR_RE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# ----------------------------------------------------------------------------- helpers


def yaml_files():
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def all_objects():
    return [(path, doc) for path in yaml_files() for doc in load_documents(path)]


def objects_of_kind(kind):
    return of_kind([doc for _, doc in all_objects()], {kind})


def the_one(kind):
    """The one object of this kind anywhere under deploy/."""
    return the_one_in([doc for _, doc in all_objects()], kind, DEPLOY)


def config_maps():
    return {cm["metadata"]["name"]: cm for cm in objects_of_kind("ConfigMap")}


def container_env(container):
    """The container's environment as {name: value}, ConfigMap references resolved."""
    maps = config_maps()
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is not None:
            assert ref["name"] in maps, f"envFrom names ConfigMap {ref['name']}, not in {DEPLOY}"
            env.update(maps[ref["name"]].get("data", {}))
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            assert ref["name"] in maps, f"{entry['name']} names ConfigMap {ref['name']}, not in {DEPLOY}"
            data = maps[ref["name"]].get("data", {})
            assert ref["key"] in data, f"ConfigMap {ref['name']} has no key {ref['key']}"
            env[entry["name"]] = str(data[ref["key"]])
        else:
            env[entry["name"]] = None  # a Secret or a field reference: set, value unknown here
    return env


def expanded_args(container):
    """The container's args with $(VAR) replaced as the kubelet does."""
    env = container_env(container)
    result = []
    for arg in container.get("args", []):
        for name in VAR_RE.findall(arg):
            assert name in env, f"{arg!r} refers to $({name}), which the container's env lacks"
            assert env[name] is not None, f"{arg!r}: $({name}) has no value known to the test"
        result.append(VAR_RE.sub(lambda m: env[m.group(1)], arg))
    return result


def deployment_flags():
    return parse_flags(expanded_args(modeld_container(the_one("Deployment"))))


def drain_timeout(flags):
    value = flags.get("--drain-timeout-seconds")
    return DEFAULT_DRAIN_TIMEOUT_S if value is None else int(value)


def seconds(value):
    """systemd time span: '45', '45s', '1min 30s', '2m' -> seconds."""
    units = {"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
             "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip())
    assert parts, f"not a time span: {value!r}"
    for number, unit in parts:
        assert unit in units, f"unknown time unit {unit!r} in {value!r}"
        total += float(number) * units[unit]
    return total


def quantity(value):
    """Kubernetes quantity -> float ('500m' -> 0.5, '2Gi' -> 2 * 2**30)."""
    suffixes = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(value))
    assert match and match.group(2) in suffixes, f"not a quantity: {value!r}"
    return float(match.group(1)) * suffixes[match.group(2)]


def exec_start():
    return split_exec_start(read_exec_start())  # supervisor argv, modeld argv


def supervisor_help_flags():
    if not SUPERVISOR.is_file():
        pytest.skip(f"{SUPERVISOR} is not built yet: the supervisor's own flags are not checked")
    return help_flags(SUPERVISOR)


# ----------------------------------------------------------------------------- YAML


def test_there_are_deploy_files():
    assert UNIT.is_file()
    names = {p.name for p in yaml_files()}
    assert {"configmap.yaml", "deployment.yaml", "service.yaml"} <= names, names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_document_is_a_named_object(path):
    documents = load_documents(path)
    assert documents, f"{path} holds no document"
    for doc in documents:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping: {doc!r}"
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], path
        assert isinstance(doc.get("kind"), str) and doc["kind"], path
        assert isinstance(doc.get("metadata"), dict) and doc["metadata"].get("name"), path
        assert "\t" not in path.read_text(encoding="utf-8"), f"{path} has tabs"


def test_names_are_unique_per_kind():
    seen = set()
    for path, doc in all_objects():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{path}: a second {key}"
        seen.add(key)


def test_kustomization_lists_every_manifest():
    kustomizations = [p for p in yaml_files() if p.name == "kustomization.yaml"]
    for path in kustomizations:
        listed = set(load_documents(path)[0].get("resources", []))
        present = {p.name for p in path.parent.glob("*.yaml") if p.name != path.name}
        assert listed == present, f"{path} lists {sorted(listed)}, the folder has {sorted(present)}"


def test_kustomize_builds_when_kubectl_is_installed():
    kubectl = shutil.which("kubectl")
    if kubectl is None or not (KUBERNETES / "kustomization.yaml").is_file():
        pytest.skip("kubectl is not installed (the build is checked offline where it is)")
    result = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc)
    expected = sorted(doc["kind"] for path, doc in all_objects()
                      if path.parent == KUBERNETES and doc["kind"] != "Kustomization")
    assert kinds == expected


# ----------------------------------------------------------------------------- Deployment


def test_deployment_runs_modeld_without_the_supervisor():
    container = modeld_container(the_one("Deployment"))
    argv = [*container.get("command", []), *container.get("args", [])]
    assert not any("modeld-supervisor" in a for a in argv), (
        "in Kubernetes the kubelet restarts modeld; modeld-supervisor must not run there")
    if container.get("command"):
        assert Path(container["command"][0]).name == "modeld", container["command"]
    flags = deployment_flags()
    assert flags.get("--model-repository"), "the Deployment passes no --model-repository"
    assert flags.get("--model-control-mode", "none") in ("none", "poll", "explicit")
    for flag in ("--repository-poll-secs", "--watchdog-seconds", "--drain-timeout-seconds"):
        if flag in flags:
            assert flags[flag].isdigit(), f"{flag}={flags[flag]!r} is not a whole number"


def test_deployment_binds_the_ports_it_declares():
    container = modeld_container(the_one("Deployment"))
    flags = deployment_flags()
    ports = container_ports(container)
    for flag, name in (("--grpc-address", "grpc"), ("--http-address", "http")):
        assert flag in flags, f"the Deployment does not set {flag} (the default binds 127.0.0.1)"
        host, port = port_of(flags[flag])
        assert host == "0.0.0.0", f"{flag}={flags[flag]}: a pod must listen beyond loopback"
        assert ports.get(name) == port, f"container port {name!r} is not {port}: {ports}"


def test_probes_use_the_health_endpoints_on_a_declared_port():
    container = modeld_container(the_one("Deployment"))
    ports = container_ports(container)
    http_port = port_of(deployment_flags()["--http-address"])[1]
    expected = {"readinessProbe": (READY_PATH,), "livenessProbe": (LIVE_PATH,),
                "startupProbe": (READY_PATH, LIVE_PATH)}
    for probe_name, paths in expected.items():
        probe = container.get(probe_name)
        assert probe is not None, f"the modeld container has no {probe_name}"
        get = probe.get("httpGet")
        assert get is not None, f"{probe_name} is not an httpGet probe"
        assert get["path"] in paths, f"{probe_name} asks {get['path']}, expected one of {paths}"
        assert get["port"] in ports, f"{probe_name} port {get['port']!r} is not declared: {ports}"
        assert ports[get["port"]] == http_port, f"{probe_name} does not probe the HTTP port"

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert (readiness.get("periodSeconds"), readiness.get("failureThreshold")) == (2, 2)
    assert (liveness.get("periodSeconds"), liveness.get("failureThreshold")) == (5, 3)
    startup = container["startupProbe"]
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget >= 300, f"the startupProbe gives loading only {budget} s"


def test_grace_period_outlasts_the_drain_timeout():
    deployment = the_one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds", 30)
    container = modeld_container(deployment)
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    sleep = pre_stop.get("sleep", {}).get("seconds", 0)
    drain = drain_timeout(deployment_flags())
    assert grace > drain + sleep, (
        f"terminationGracePeriodSeconds {grace} must exceed --drain-timeout-seconds {drain}"
        f" + preStop sleep {sleep}")


def test_resources_have_requests_and_limits():
    resources = modeld_container(the_one("Deployment")).get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resource in resources.get(kind, {}), f"no {kind}.{resource}"
    for resource in ("cpu", "memory"):
        request = quantity(resources["requests"][resource])
        limit = quantity(resources["limits"][resource])
        assert 0 < request <= limit, f"{resource}: request {request} > limit {limit}"


def test_every_config_map_is_used_by_the_deployment():
    deployment = the_one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = modeld_container(deployment)
    mounted = {m["name"] for m in container.get("volumeMounts", [])}
    used = set()
    for volume in pod.get("volumes", []):
        if "configMap" in volume and volume["name"] in mounted:
            used.add(volume["configMap"]["name"])
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            used.add(source["configMapRef"]["name"])
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            used.add(ref["name"])
    assert config_maps(), "no ConfigMap under deploy/"
    for name in config_maps():
        assert name in used, f"ConfigMap {name} is neither mounted nor read by the Deployment"
    # Every key the ConfigMap holds ends up somewhere (no forgotten setting).
    args = " ".join(container.get("args", []))
    env = {e["name"]: e for e in container.get("env", [])}
    for name, cm in config_maps().items():
        for key in cm.get("data", {}):
            referenced = any(
                e.get("valueFrom", {}).get("configMapKeyRef", {}) == {"name": name, "key": key}
                and f"$({n})" in args for n, e in env.items())
            whole = any(s.get("configMapRef", {}).get("name") == name
                        for s in container.get("envFrom", []))
            volume = any(v.get("configMap", {}).get("name") == name for v in pod.get("volumes", []))
            assert referenced or whole or volume, f"ConfigMap {name} key {key} is not used"


def test_the_repository_is_mounted_read_only():
    deployment = the_one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = modeld_container(deployment)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = container.get("volumeMounts", [])
    for mount in mounts:
        assert mount["name"] in volumes, f"volumeMount {mount['name']} has no volume"
    repository = deployment_flags()["--model-repository"]
    holding = [m for m in mounts if repository == m["mountPath"]
               or repository.startswith(m["mountPath"].rstrip("/") + "/")]
    assert holding, f"--model-repository={repository} is on no mounted volume"
    assert all(m.get("readOnly") for m in holding), "the repository must be mounted read-only"
    claims = {c["metadata"]["name"] for c in objects_of_kind("PersistentVolumeClaim")}
    for volume in volumes.values():
        claim = volume.get("persistentVolumeClaim")
        if claim is not None and claims:
            assert claim["claimName"] in claims, f"no PersistentVolumeClaim {claim['claimName']}"


def test_security_context():
    deployment = the_one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = modeld_container(deployment)
    non_root = security_value(container, pod, "runAsNonRoot")
    assert non_root is True, "runAsNonRoot must be true"
    assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True


def test_service_targets_the_container_ports():
    deployment = the_one("Deployment")
    service = the_one("Service")
    container = modeld_container(deployment)
    ports = container_ports(container)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector and all(labels.get(k) == v for k, v in selector.items()), (
        f"the Service selector {selector} does not match the pod labels {labels}")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(by_name) == {"grpc", "http"}, f"Service ports are named {sorted(by_name)}"
    for name, port in by_name.items():
        target = port.get("targetPort", port["port"])
        assert target in ports, f"Service port {name} targets {target!r}, not a container port"
        assert ports[target] == ports[name], f"Service port {name} reaches the wrong port"


# ----------------------------------------------------------------------------- systemd


def test_unit_has_its_sections():
    unit = read_unit()
    for section in ("Unit", "Service", "Install"):
        assert unit.has_section(section), f"{UNIT} has no [{section}]"
    assert unit["Install"].get("WantedBy"), "[Install] has no WantedBy"
    assert unit["Unit"].get("Description")


def test_unit_has_no_inline_comments_or_repeated_keys():
    # systemd reads "Key=value # text" as part of the value; and a repeated key means a list
    # (or an error) to systemd, never "the last one wins" as configparser reads it.
    section, seen = None, set()
    for number, line in enumerate(UNIT.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        if not stripped or stripped[0] in "#;" or line[0].isspace():
            continue
        key, _, value = line.partition("=")
        assert " #" not in value, f"{UNIT}:{number}: an inline comment is part of the value"
        assert (section, key) not in seen, f"{UNIT}:{number}: {key} repeated in {section}"
        seen.add((section, key))


def test_exec_start_runs_modeld_under_the_supervisor():
    supervisor, modeld = exec_start()
    assert Path(supervisor[0]).name == "modeld-supervisor", supervisor
    assert supervisor[0].startswith("/"), "systemd needs an absolute path"
    assert modeld and Path(modeld[0]).name == "modeld", modeld
    assert modeld[0].startswith("/")
    flags = parse_flags(modeld[1:])
    assert flags.get("--model-repository"), "ExecStart passes modeld no --model-repository"
    assert flags.get("--model-control-mode", "none") in ("none", "poll", "explicit")
    parse_flags(supervisor[1:])  # only --flags before "--"


def test_unit_stops_after_the_drain_and_reloads_with_sighup():
    service = read_unit()["Service"]
    _, modeld = exec_start()
    drain = drain_timeout(parse_flags(modeld[1:]))
    assert "TimeoutStopSec" in service, "TimeoutStopSec is not set (systemd's default is 90 s)"
    assert seconds(service["TimeoutStopSec"]) > drain, (
        f"TimeoutStopSec={service['TimeoutStopSec']} must exceed --drain-timeout-seconds {drain}")
    assert service.get("KillSignal", "SIGTERM") in ("SIGTERM", "TERM", "15")
    reload = unit_command(service["ExecReload"])
    assert Path(reload[0]).name == "kill" and reload[0].startswith("/"), reload
    assert any(a in ("-HUP", "-SIGHUP", "-1") for a in reload) or (
        "-s" in reload and reload[reload.index("-s") + 1] in ("HUP", "SIGHUP")), reload
    assert reload[-1] == "$MAINPID", reload
    assert service.get("Restart") in ("on-failure", "always", "on-abnormal"), service.get("Restart")


def test_unit_runs_as_a_dedicated_user_with_hardening():
    service = read_unit()["Service"]
    assert service.get("User") not in (None, "", "root", "0")
    assert service.get("NoNewPrivileges") in ("yes", "true", "1")
    assert service.get("ProtectSystem") == "strict"
    _, modeld = exec_start()
    repository = parse_flags(modeld[1:])["--model-repository"]
    assert repository in service.get("ReadOnlyPaths", "").split(), "ReadOnlyPaths lacks the repository"
    assert service.get("LimitNOFILE")


def test_systemd_analyze_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify wants the binaries to exist: point ExecStart at one that does, keep the rest.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/modeld/bin/modeld-supervisor", "/bin/true")
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if copy.name in line and ("ignoring" in line or "Unknown" in line
                                            or "Failed to parse" in line)]
    assert not complaints, "\n".join(complaints)


# ----------------------------------------------------------------------------- flags


def test_every_modeld_flag_in_the_deploy_files_exists():
    known = modeld_help_flags()
    _, modeld = exec_start()
    used = {"the systemd unit": set(parse_flags(modeld[1:])),
            "the Deployment": set(deployment_flags())}
    for where, flags in used.items():
        unknown = sorted(flags - known)
        assert not unknown, f"{where} passes flags modeld --help does not list: {unknown}"


def test_every_supervisor_flag_in_the_unit_exists():
    supervisor, _ = exec_start()
    known = supervisor_help_flags()
    unknown = sorted(set(parse_flags(supervisor[1:])) - known)
    assert not unknown, f"the unit passes modeld-supervisor unknown flags: {unknown}"


def test_operations_doc_names_real_flags():
    text = OPERATIONS.read_text(encoding="utf-8")
    known = modeld_help_flags() | FOREIGN_FLAGS
    known |= supervisor_help_flags() if SUPERVISOR.is_file() else SUPERVISOR_FLAGS
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))
    unknown = sorted(named - known)
    assert not unknown, f"docs/operations.md names flags that do not exist: {unknown}"


def test_operations_doc_describes_every_deploy_file():
    text = OPERATIONS.read_text(encoding="utf-8")
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(REPO_ROOT))
            assert relative in text or path.name in text, f"docs/operations.md does not mention {relative}"
