"""What a server says about its models' versions: :class:`ModelStatus`, and how the answers of
the calls that tell it are read, without I/O.

Two of modeld's APIs tell the state of a model's versions and why one does not serve:

* TensorFlow Serving's model status (gRPC ``tensorflow.serving.ModelService/GetModelStatus``,
  HTTP ``GET /v1/models/{m}[/versions/{v}]``), served in every ``--model-control-mode``: the
  versions of one model. :meth:`modeld.Client.model_status` asks it.
* The KServe repository index (gRPC ``RepositoryIndex``, HTTP ``POST /v2/repository/index``):
  every model and version of the repository, served in every ``--model-control-mode`` too.
  :meth:`modeld.Client.models` asks it.

Over the message queues (Redis, AMQP), which carry neither, the answer to a metadata query
stands for the model's status: modeld's "model 'x' is not ready: ..." is read here.

Both are read into ModelStatus entries here, one per version; the transports do the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import InvalidInput, ModeldError, ModelNotFound, Unavailable

__all__ = [
    "ModelStatus",
    "check_version",
    "from_error",
    "from_index",
    "from_metadata",
    "from_metadata_error",
    "from_tfserving_json",
    "not_ready_answer",
    "summarize",
    "tfserving_entry",
]


@dataclass(frozen=True)
class ModelStatus:
    """The state of one model version as the server reports it.

    Attributes:
        name: the model's name.
        version: the version this status is of (a string, as the protocols spell versions);
            None when it is of no particular version: a model the server does not have, or one
            whose configuration failed before any version was read.
        ready: whether the version takes requests (``state == "READY"``).
        state: ``"READY"``, ``"LOADING"``, ``"UNAVAILABLE"`` (failed to load, or unloaded) or
            ``"UNKNOWN"`` (the server has no such model or version).
        reason: the server's reason, in its words, for a version that is not ready (the load
            error, "unknown model 'x'"); None when it gives none, as for a ready version (one
            whose files changed and failed to reload, while the copy loaded before keeps
            serving, is READY with that failure as its reason in the repository index).
    """

    READY: ClassVar[str] = "READY"
    LOADING: ClassVar[str] = "LOADING"
    UNAVAILABLE: ClassVar[str] = "UNAVAILABLE"
    UNKNOWN: ClassVar[str] = "UNKNOWN"

    name: str
    version: str | None
    ready: bool
    state: str
    reason: str | None = None


#: What modeld's model status says of a model that has no versions (its config.pbtxt failed).
NO_VERSIONS = "has no versions"
#: TensorFlow Serving's version states (ModelVersionStatus.State) -> ModelStatus.state.
TFSERVING_STATES = {
    "START": ModelStatus.LOADING,
    "LOADING": ModelStatus.LOADING,
    "AVAILABLE": ModelStatus.READY,
    "UNLOADING": ModelStatus.UNAVAILABLE,
    "END": ModelStatus.UNAVAILABLE,  # modeld: a version that failed to load, with the error
}
#: The state numbers of TensorFlow Serving's ModelVersionStatus.State.
TFSERVING_STATE_NAMES = {0: "UNKNOWN", 10: "START", 20: "LOADING", 30: "AVAILABLE",
                         40: "UNLOADING", 50: "END"}


def _entry(name: str, version: str | None, state: str, reason: str | None) -> ModelStatus:
    return ModelStatus(name=name, version=version or None, ready=state == ModelStatus.READY,
                       state=state, reason=reason or None)


def check_version(version: str) -> None:
    """InvalidInput for a version that is not a number ("" is the server's choice): model
    status takes version numbers."""
    if version and not version.isdigit():
        raise InvalidInput(f"a model version is a number, not {version!r}")


# --- TensorFlow Serving's model status (one model) ------------------------------------------


def tfserving_entry(name: str, version: Any, state: str, error_message: str) -> ModelStatus:
    """One ModelVersionStatus (``state`` by name: AVAILABLE, LOADING, END, ...)."""
    return _entry(name, str(version), TFSERVING_STATES.get(state, ModelStatus.UNKNOWN),
                  error_message)


def from_tfserving_json(name: str, data: Any) -> list[ModelStatus]:
    """The versions in ``{"model_version_status": [{"version", "state", "status":
    {"error_code", "error_message"}}]}`` (HTTP ``GET /v1/models/{m}``)."""
    versions = data.get("model_version_status") if isinstance(data, Mapping) else None
    if not isinstance(versions, list):
        raise ModeldError("malformed model status from the server: no model_version_status")
    entries = []
    for item in versions:
        if not isinstance(item, Mapping):
            raise ModeldError("malformed model status from the server")
        status = item.get("status") if isinstance(item.get("status"), Mapping) else {}
        entries.append(tfserving_entry(name, item.get("version", ""), str(item.get("state", "")),
                                       str(status.get("error_message", "") or "")))
    return entries


def from_error(name: str, version: str, error: ModeldError) -> ModelStatus | None:
    """The status a model-status call's error stands for: UNKNOWN for a model or version the
    server does not have, UNAVAILABLE for a model whose configuration failed before any version
    was read; None for any other error (the call raises it)."""
    if isinstance(error, ModelNotFound):
        return _entry(name, version, ModelStatus.UNKNOWN, error.message)
    if isinstance(error, Unavailable) and NO_VERSIONS in error.message:
        # "model 'x' has no versions: <reason>": the reason, as the repository index gives it.
        prefix = f"model '{name}' {NO_VERSIONS}: "
        reason = error.message[len(prefix):] if error.message.startswith(prefix) else error.message
        return _entry(name, None, ModelStatus.UNAVAILABLE, reason)
    return None


def from_metadata(name: str, version: str, versions: Sequence[str]) -> list[ModelStatus]:
    """The ready versions of a model whose metadata the server gave (the only model status
    modeld's Redis queue carries): `version`, or every version the metadata lists."""
    return [_entry(name, v, ModelStatus.READY, None) for v in ([version] if version else versions)]


def from_metadata_error(name: str, version: str, error: ModeldError) -> ModelStatus | None:
    """The status a metadata call's error, answered by modeld, stands for: UNKNOWN for a model
    or version it does not have; for one it does not serve, LOADING or UNAVAILABLE as modeld's
    "is not ready" answer says (:func:`not_ready_answer`), else UNAVAILABLE with the whole
    message; None for any other error."""
    if isinstance(error, ModelNotFound):
        return _entry(name, version, ModelStatus.UNKNOWN, error.message)
    if isinstance(error, Unavailable):
        read = not_ready_answer(name, error.message)
        if read is not None:
            return read
        return _entry(name, version, ModelStatus.UNAVAILABLE, error.message)
    return None


# modeld's answers to a call on a model without a ready version (ModelManager::Get):
#   "model 'x' is not ready: <reason>", the reason being the model's own (its config.pbtxt
#   failed: no version was read) or, joined by "; ", "version N: <load error>" and
#   "version N is loading" for each version;
#   "version N of model 'x' is not ready: <reason>" when the call named version N, the reason
#   being empty while it loads.
_LOADING = re.compile(r"(?:^|; )version (\d+) is loading(?=;|$)")
_ONE_VERSION = re.compile(r"version (\d+): (.*)", re.DOTALL)
_OTHER_VERSION = re.compile(r"; version \d+(?::| is loading)")


def not_ready_answer(name: str, message: str) -> ModelStatus | None:
    """The status modeld's answer `message` ("model 'x' is not ready: ...") gives model `name`:
    LOADING when a version is loading (waiting helps), else UNAVAILABLE with the reason (and
    the version, where one version is named); None when `message` is no such answer about
    `name` (another error, or a connection's)."""
    model_prefix = f"model '{name}' is not ready: "
    if message.startswith(model_prefix):
        rest = message[len(model_prefix):]
        loading = [int(v) for v in _LOADING.findall(rest)]
        if loading:
            return _entry(name, str(max(loading)), ModelStatus.LOADING, rest)
        one = _ONE_VERSION.fullmatch(rest)
        if one is not None and not _OTHER_VERSION.search(rest):
            return _entry(name, one.group(1), ModelStatus.UNAVAILABLE, one.group(2))
        return _entry(name, None, ModelStatus.UNAVAILABLE, rest)
    version = re.fullmatch(rf"version (\d+) of model '{re.escape(name)}' is not ready: (.*)",
                           message, re.DOTALL)
    if version is not None:
        if not version.group(2):  # a version that is loading has no reason yet
            return _entry(name, version.group(1), ModelStatus.LOADING, None)
        return _entry(name, version.group(1), ModelStatus.UNAVAILABLE, version.group(2))
    return None


def summarize(entries: Sequence[ModelStatus]) -> ModelStatus:
    """One status for a model from those of its versions: the newest ready version (the one
    a request that names no version gets), else the newest loading one, else the newest."""
    if not entries:
        raise ModeldError("the server reported no status for the model")

    def newest(candidates: Iterable[ModelStatus]) -> ModelStatus:
        return max(candidates, key=lambda e: int(e.version) if (e.version or "").isdigit() else -1)

    for state in (ModelStatus.READY, ModelStatus.LOADING):
        matching = [e for e in entries if e.state == state]
        if matching:
            return newest(matching)
    return newest(entries)


# --- the repository index (every model) ----------------------------------------------------


def from_index(data: Any) -> list[ModelStatus]:
    """The entries of ``[{"name", "version", "state", "reason"}]`` (the HTTP index; the gRPC
    one's ModelIndex messages are read into the same dicts)."""
    if not isinstance(data, list):
        raise ModeldError("malformed repository index from the server: not a list")
    entries = []
    for item in data:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ModeldError("malformed repository index from the server")
        state = str(item.get("state", "")) or ModelStatus.UNKNOWN
        entries.append(_entry(item["name"], str(item.get("version", "")), state,
                              str(item.get("reason", "") or "")))
    return entries
