"""docs/exporting.md, run as a reader would: every export snippet, config, tree and check
command in it, and the messages it quotes for the common mistakes.

The document marks what is run with an HTML comment on the line before a fenced block (and
every fenced block has one):

    <!-- test: export ID -->      a Python snippet: run with this interpreter (the venv's) in
                                  a subprocess, in a temporary folder, where it writes models/
    <!-- test: file PATH -->      a file's contents, written to PATH beside the models of the
                                  export before it
    <!-- test: tree ID ... -->    a repository tree: each file and folder it names must exist
                                  once those exports ran
    <!-- test: check ID -->       `python -m modeld ...` commands, run against modeld serving
                                  those models (over gRPC, and each `infer` over HTTP too),
                                  after `status --model` says each model is ready; a
                                  `# -> JSON` line after a command is what it
                                  prints (floats as the document rounds them); every `infer` is
                                  also compared with the framework's own answer for the same
                                  input, computed in the snippet's subprocess (REFERENCES)
    <!-- test: start -->          how to start modeld: the flags must be modeld's
    <!-- test: says ID -->        `$ python -m modeld metadata NAME` and the error it prints
                                  for a model exported wrongly (MISTAKES), `…` standing for
                                  text left out; line breaks in the document are spaces

Each repository is served by modeld started as the document says: in the folder holding
models/, with --model-repository=models (and ports 0), so the reasons name models/... as the
document shows them. The torch.export package takes 10 to 30 s to compile, so it is cached by
content under build/test-models/ (as pytorch_models.py does); the other snippets run every
time. TensorFlow's snippets run in one subprocess (TensorFlow imports slowly) and are marked
`tensorflow`, like every test that needs modeld's TensorFlow backend (conftest.py).
"""

import concurrent.futures
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import model_cache
from modeld_server import BINARY, REPO_ROOT, ServerProcess, require_build

# The snippets compile a torch.export package and import TensorFlow: more than the default.
pytestmark = pytest.mark.timeout(300)

DOC = REPO_ROOT / "docs" / "exporting.md"
RUNNER = Path(__file__).resolve().parent / "snippet_runner.py"
TORCH_EXPORT = REPO_ROOT / "python" / "src" / "modeld" / "torch_export.py"
PYTHON = sys.executable  # the venv's: the one with torch, TensorFlow and the converters
SNIPPET_TIMEOUT_S = 600
CLI_TIMEOUT_S = 60

MARKER = re.compile(r"^<!-- test: (\w+)(?: (.*?))? -->$")

# Every export snippet: the expression (evaluated in the snippet's namespace, `x` the check
# command's --json value, `np` numpy) that gives the framework's own answer for each model it
# writes, and the tolerance modeld's answer is held to.
REFERENCES = {
    "torchscript": {"torch_net": "model(torch.tensor(x))"},
    "torch_export": {"torch_pt2": "model(torch.tensor(x))"},
    "torch_onnx": {"torch_onnx": "model(torch.tensor(x))"},
    "keras": {"keras_net": "model.predict(np.float32(x), verbose=0)"},
    "tf_module": {"tf_linear": "module.serve(tf.constant(x, tf.float32))['y']"},
    "frozen_graph": {"frozen_net": "graph_fn(tf.constant(x, tf.float32))"},
    # skl2onnx and onnxmltools give the label one column per row: [N, 1].
    "sklearn": {"iris": "{'label': pipeline.predict(np.float32(x['x'])).reshape(-1, 1), "
                        "'probabilities': pipeline.predict_proba(np.float32(x['x']))}"},
    "xgboost": {"iris_xgb": "{'label': model.predict(np.float32(x['x'])).reshape(-1, 1), "
                            "'probabilities': model.predict_proba(np.float32(x['x']))}"},
    "lightgbm": {"diabetes_lgbm": "model.predict(np.float32(x)).reshape(-1, 1)"},
}
# (rtol, atol) of modeld against the framework in Python. Float32 in both for torch and
# TensorFlow (only a different sum order may differ); scikit-learn, XGBoost and LightGBM
# compute in float64 where the ONNX graph computes in float32.
TOLERANCE = {"torchscript": (1e-5, 1e-6), "torch_export": (1e-5, 1e-5),
             "torch_onnx": (1e-5, 1e-6), "keras": (1e-5, 1e-6), "tf_module": (1e-6, 1e-6),
             "frozen_graph": (1e-6, 1e-6), "sklearn": (1e-4, 1e-6), "xgboost": (1e-4, 1e-6),
             "lightgbm": (1e-5, 1e-3)}
TENSORFLOW_EXPORTS = ("keras", "tf_module", "frozen_graph")
CACHED_EXPORTS = ("torch_export",)

# Test code around some snippets: `setup` runs first (in a namespace of its own), `after` in
# the snippet's namespace once it has run; both in the snippet's folder. {mistakes} is the
# folder holding the repository of mistakes.
SETUP = {
    # The frozen graph the document's fix reads: TensorFlow 1's format, made from y = x w + b
    # by the conversion TensorFlow 1's freeze_graph did (its tensors: x:0 -> Identity:0).
    "frozen_graph": """
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

class Linear(tf.Module):
    def __init__(self):
        self.w = tf.Variable([[2.0], [-1.0]])
        self.b = tf.Variable([0.5])

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(self, x):
        return tf.matmul(x, self.w) + self.b

module = Linear()
frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
assert [t.name for t in frozen.outputs] == ["Identity:0"], frozen.outputs
tf.io.write_graph(frozen.graph.as_graph_def(), ".", "frozen_graph.pb", as_text=False)
""",
}
AFTER = {
    # What "A torch.save file instead of TorchScript" describes.
    "torchscript": """
import os
os.makedirs("{mistakes}/models/torch_net/1")
torch.save(model, "{mistakes}/models/torch_net/1/model.pt")
""",
    # What "A Keras archive instead of a SavedModel" describes.
    "keras": """
import os
os.makedirs("{mistakes}/models/keras_net/1")
model.save("{mistakes}/models/keras_net/1/model.keras")
""",
}


@dataclass
class Block:
    kind: str    # the marker's: export, file, tree, check, start, says
    args: list   # the marker's words after the kind
    text: str    # the fenced block's contents
    line: int    # the line of the block's first content line in the document
    owner: str   # the export before it (for a file block)


def parse(text):
    """The marked fenced blocks of `text`; every fenced block must be marked."""
    lines = text.splitlines()
    blocks, pending, owner, number = [], None, None, 0
    while number < len(lines):
        line = lines[number].strip()
        if (match := MARKER.match(line)) is not None:
            assert pending is None, f"line {number + 1}: two markers for one block"
            pending = (match.group(1), (match.group(2) or "").split())
        elif line.startswith("```"):
            assert pending is not None, f"line {number + 1}: a fenced block without a marker"
            end = next((i for i in range(number + 1, len(lines))
                        if lines[i].strip() == "```"), None)
            assert end is not None, f"line {number + 1}: the block is not closed"
            kind, args = pending
            if kind == "export":
                owner = args[0]
            blocks.append(Block(kind, args, "\n".join(lines[number + 1:end]) + "\n",
                                number + 2, owner))
            pending, number = None, end
        elif line and pending is not None:
            raise AssertionError(f"line {number + 1}: a marker not followed by a fenced block")
        number += 1
    return blocks


BLOCKS = parse(DOC.read_text())


def blocks(kind):
    return [block for block in BLOCKS if block.kind == kind]


EXPORTS = {block.args[0]: block for block in blocks("export")}


def commands(block):
    """[(argv, expected JSON text or None)] of a check block."""
    result = []
    for line in block.text.splitlines():
        line = line.strip()
        if line.startswith("# -> "):
            assert result and result[-1][1] is None, f"{line!r} follows no command"
            result[-1] = (result[-1][0], line.removeprefix("# -> "))
        elif line and not line.startswith("#"):
            argv = shlex.split(line, comments=True)
            assert argv[:3] == ["python", "-m", "modeld"], f"not a modeld command: {line!r}"
            result.append((argv[3:], None))
    return result


def infer_inputs(export_id):
    """{model: [--json value, ...]} of the infer commands of `export_id`'s check blocks."""
    inputs = {}
    for block in blocks("check"):
        if block.args[0] != export_id:
            continue
        for argv, _ in commands(block):
            if argv[0] == "infer":
                given = inputs.setdefault(argv[1], [])
                if (value := json_input(argv)) not in given:
                    given.append(value)
    return inputs


def json_input(argv):
    return json.loads(argv[argv.index("--json") + 1])


def reference_name(model, index):
    """The file name (under references/) of the framework's answer to `model`'s index-th
    input."""
    return f"{model}-{index}"


def job(export_id, mistakes):
    block = EXPORTS[export_id]
    inputs = infer_inputs(export_id)
    expressions = REFERENCES[export_id]
    assert set(inputs) == set(expressions), (
        f"{export_id}: the document infers {sorted(inputs)}, the test knows {sorted(expressions)}")
    return {
        "id": export_id, "code": block.text, "line": block.line, "source": "docs/exporting.md",
        "setup": SETUP.get(export_id), "after": AFTER.get(export_id, "").format(
            mistakes=mistakes),
        "references": {reference_name(model, i): [given, expressions[model]]
                       for model in expressions for i, given in enumerate(inputs[model])},
    }


def run_jobs(jobs, folder):
    """Runs the jobs in one subprocess in `folder`; fails with its output if one fails."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / f".jobs-{jobs[0]['id']}.json"
    spec.write_text(json.dumps(jobs))
    result = subprocess.run([PYTHON, str(RUNNER), str(spec)], cwd=folder, capture_output=True,
                            text=True, timeout=SNIPPET_TIMEOUT_S, stdin=subprocess.DEVNULL)
    spec.unlink()
    if result.returncode != 0:
        pytest.fail(f"the snippet(s) {[j['id'] for j in jobs]} of docs/exporting.md failed "
                    f"(exit {result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-6000:]}")


def run_cached(export_id, folder):
    """run_jobs([job(export_id)]) into `folder`, through a cache keyed by what the output depends
    on: the job, the runner, the helper module and torch's version."""
    spec = job(export_id, mistakes="")
    # Not the snippet's line: an edit above it does not make the package again.
    unplaced = {key: value for key, value in spec.items() if key != "line"}
    key = model_cache.content_key([json.dumps(unplaced, sort_keys=True).encode(),
                                   RUNNER.read_bytes(), TORCH_EXPORT.read_bytes(),
                                   importlib.metadata.version("torch").encode()])
    prefix = f"exporting-{export_id}-"
    cached = model_cache.CACHE_ROOT / f"{prefix}{key}"
    if not (cached / ".complete").is_file():
        partial = model_cache.CACHE_ROOT / f".partial-{cached.name}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        run_jobs([spec], partial)
        (partial / ".complete").write_text("")
        try:
            partial.rename(cached)
        except OSError:  # another session wrote it meanwhile
            shutil.rmtree(partial, ignore_errors=True)
        for stale in model_cache.CACHE_ROOT.glob(f"{prefix}*"):
            if stale != cached:
                shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(cached, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".complete"))


def write_files(folder, export_ids):
    for block in blocks("file"):
        if block.owner in export_ids:
            path = folder / block.args[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)


def start_in(folder):
    """modeld started in `folder` as the document says (--model-repository=models), on ports
    0; waits until every model has loaded or failed."""
    require_build()
    previous = os.getcwd()
    os.chdir(folder)  # the server starts here; nothing else runs in this process meanwhile
    try:
        server = ServerProcess("models", binary=BINARY.resolve())
    finally:
        os.chdir(previous)
    try:
        server.wait_until_listening()
        server.wait_until_ready()
    except BaseException:
        server.proc.kill()
        server.proc.wait(timeout=30)
        raise
    return server


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("exporting")
    folders = {"exports": root / "exports", "tensorflow": root / "tensorflow",
               "mistakes": root / "mistakes"}
    (folders["mistakes"] / "models").mkdir(parents=True)
    return folders


@pytest.fixture(scope="module")
def exports(folders):
    """The folder where every export but TensorFlow's ran (into models/)."""
    folder = folders["exports"]
    plain = [export_id for export_id in EXPORTS
             if export_id not in TENSORFLOW_EXPORTS + CACHED_EXPORTS]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # The package compile (when not cached) beside the rest, one subprocess per snippet.
        cached = [pool.submit(run_cached, export_id, folder) for export_id in CACHED_EXPORTS]
        for export_id in plain:
            run_jobs([job(export_id, folders["mistakes"])], folder)
        for future in cached:
            future.result()
    write_files(folder, plain + list(CACHED_EXPORTS))
    return folder


@pytest.fixture(scope="module")
def tensorflow_exports(folders):
    """The folder where TensorFlow's exports ran, all in one subprocess."""
    folder = folders["tensorflow"]
    run_jobs([job(export_id, folders["mistakes"]) for export_id in TENSORFLOW_EXPORTS], folder)
    write_files(folder, TENSORFLOW_EXPORTS)
    return folder


def folder_of(export_id, request):
    name = "tensorflow_exports" if export_id in TENSORFLOW_EXPORTS else "exports"
    return request.getfixturevalue(name)


@pytest.fixture(scope="module")
def server(exports):
    process = start_in(exports)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tensorflow_server(tensorflow_exports):
    process = start_in(tensorflow_exports)
    yield process
    process.stop()


def server_of(export_id, request):
    name = "tensorflow_server" if export_id in TENSORFLOW_EXPORTS else "server"
    return request.getfixturevalue(name)


@pytest.fixture(scope="module")
def mistakes_server(request, folders, exports):
    """modeld on a repository with each mistake of the document's last section."""
    models = folders["mistakes"] / "models"
    good = exports / "models"
    # torch_net: the snippet's namespace wrote a torch.save pickle (AFTER); its config.
    shutil.copy(good / "torch_net" / "config.pbtxt", models / "torch_net")
    # fraud: TorchScript and its config, the model file beside the config.
    (models / "fraud").mkdir()
    shutil.copy(good / "torch_net" / "config.pbtxt", models / "fraud")
    shutil.copy(good / "torch_net" / "1" / "model.pt", models / "fraud")
    # iris: the ONNX model named after the model.
    (models / "iris" / "1").mkdir(parents=True)
    shutil.copy(good / "iris" / "1" / "model.onnx", models / "iris" / "1" / "iris.onnx")
    if os.environ.get("MODELD_TENSORFLOW", "on") == "on":
        # keras_net: AFTER wrote model.keras; frozen_net: SETUP's frozen graph.
        tensorflow = request.getfixturevalue("tensorflow_exports")
        (models / "frozen_net" / "1").mkdir(parents=True)
        shutil.copy(tensorflow / "frozen_graph.pb", models / "frozen_net" / "1")
    process = start_in(folders["mistakes"])
    yield process
    process.stop()


def cli(server, argv, url=None):
    """`python -m modeld ARGV` against `server` (gRPC unless `url`)."""
    env = {**os.environ, "MODELD_URL": url or f"grpc://{server.address}"}
    return subprocess.run([PYTHON, "-m", "modeld", *argv], capture_output=True, text=True,
                          env=env, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)


def approx(documented, actual, path="output"):
    """Asserts `actual` is `documented` (JSON), floats as the document rounds them: to two
    decimals, or to as many as it writes."""
    if isinstance(documented, float) or (isinstance(actual, float)
                                         and isinstance(documented, int)):
        decimals = max(2, len(repr(float(documented)).partition(".")[2]))
        assert abs(actual - documented) <= 0.5 * 10.0 ** -decimals + 1e-9, (
            f"{path}: the document says {documented}, modeld answers {actual}")
    elif isinstance(documented, list):
        assert isinstance(actual, list) and len(actual) == len(documented), (
            f"{path}: the document says {documented}, modeld answers {actual}")
        for i, (d, a) in enumerate(zip(documented, actual)):
            approx(d, a, f"{path}[{i}]")
    elif isinstance(documented, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(documented), (
            f"{path}: the document says {documented}, modeld answers {actual}")
        for key in documented:
            approx(documented[key], actual[key], f"{path}.{key}")
    else:
        assert actual == documented, f"{path}: the document says {documented!r}, modeld {actual!r}"


def assert_matches_reference(answer, reference, tolerance, what):
    rtol, atol = tolerance
    if isinstance(reference, dict):
        assert isinstance(answer, dict) and sorted(answer) == sorted(reference), (
            f"{what}: modeld answers {answer}, the framework {reference}")
        for name in reference:
            assert_matches_reference(answer[name], reference[name], tolerance, f"{what}.{name}")
        return
    answer, reference = np.asarray(answer), np.asarray(reference)
    assert answer.shape == reference.shape, (
        f"{what}: modeld answers shape {answer.shape}, the framework {reference.shape}")
    np.testing.assert_allclose(answer, reference, rtol=rtol, atol=atol, err_msg=what)


def export_param(export_id):
    marks = [pytest.mark.tensorflow] if export_id in TENSORFLOW_EXPORTS else []
    return pytest.param(export_id, marks=marks, id=export_id)


# --- the document itself ------------------------------------------------------------------


def test_every_snippet_is_known_to_the_test():
    assert set(EXPORTS) == set(REFERENCES), (
        f"exports in the document: {sorted(EXPORTS)}; in REFERENCES: {sorted(REFERENCES)}")
    assert {block.args[0] for block in blocks("check")} == set(EXPORTS), (
        "every export needs a check block, and every check block an export")
    assert {block.args[0] for block in blocks("says")} == set(MISTAKES)
    for block in blocks("tree"):
        assert set(block.args) <= set(EXPORTS), f"tree of unknown exports {block.args}"


def test_links_within_the_page_resolve():
    text = re.sub(r"^```.*?^```$", "", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    # GitHub's anchors: lower case, punctuation but hyphens and underscores dropped, spaces
    # to hyphens.
    anchors = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
               for heading in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, f"#{link} is no heading of docs/exporting.md: {sorted(anchors)}"


def test_start_command_uses_modelds_flags():
    (block,) = blocks("start")
    argv = shlex.split(block.text)
    assert argv[0] == "build/bin/modeld", argv
    require_build()
    help_text = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True,
                               timeout=CLI_TIMEOUT_S).stdout
    for flag in argv[1:]:
        name = flag.partition("=")[0]
        assert re.search(rf"^\s*{re.escape(name)}\b", help_text, re.MULTILINE), (
            f"{name} is not in modeld --help")
    assert "--model-repository=models" in argv  # what start_in runs


# --- each export: its tree, then modeld serving it ------------------------------------------


@pytest.mark.parametrize("tree", [
    pytest.param(block, id="+".join(block.args),
                 marks=[pytest.mark.tensorflow] if set(block.args) & set(TENSORFLOW_EXPORTS)
                 else [])
    for block in blocks("tree")])
def test_tree_is_what_the_export_writes(request, tree):
    folder = folder_of(tree.args[0], request)
    stack = []  # (indent, path) of the folders the lines are in
    for line in tree.text.splitlines():
        entry = line.split("#")[0].rstrip()
        if not entry.strip():
            continue
        indent = len(entry) - len(entry.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        name = entry.strip()
        path = Path(*[p for _, p in stack], name.rstrip("/").removesuffix("/..."))
        assert (folder / path).exists(), f"{path} is in the tree, not in what the export wrote"
        if name.endswith("/"):
            assert (folder / path).is_dir(), f"{path} is not a folder"
            stack.append((indent, name.rstrip("/")))


@pytest.mark.parametrize("export_id", [export_param(e) for e in REFERENCES])
def test_checks_answer_as_the_framework(request, export_id):
    server = server_of(export_id, request)
    folder = folder_of(export_id, request)
    checks = [block for block in blocks("check") if block.args[0] == export_id]
    models = sorted(REFERENCES[export_id])
    for model in models:
        result = cli(server, ["status", "--model", model])
        assert result.returncode == 0, f"{model} is not ready: {result.stdout}{result.stderr}"
        assert json.loads(result.stdout)["models"] == {model: True}
    for block in checks:
        for argv, documented in commands(block):
            urls = [None]
            if argv[0] == "infer":  # the other transport too: the same answer
                urls.append(f"http://{server.http_address}")
            for url in urls:
                what = f"python -m modeld {shlex.join(argv)} ({url or 'gRPC'})"
                result = cli(server, argv, url)
                assert result.returncode == 0, f"{what}: {result.stdout}{result.stderr}"
                answer = json.loads(result.stdout)
                if documented is not None:
                    approx(json.loads(documented), answer, what)
                if argv[0] == "infer":
                    index = infer_inputs(export_id)[argv[1]].index(json_input(argv))
                    name = reference_name(argv[1], index)
                    reference = json.loads((folder / "references" / f"{name}.json").read_text())
                    assert_matches_reference(answer, reference, TOLERANCE[export_id], what)


# --- the common mistakes: what modeld says ----------------------------------------------------

# The mistakes the document shows, and whether making one needs TensorFlow.
MISTAKES = {"torch_save": False, "keras_archive": True, "frozen_graph": True,
            "beside_config": False, "renamed": False}


@pytest.mark.parametrize("mistake", [
    pytest.param(name, id=name, marks=[pytest.mark.tensorflow] if needs_tensorflow else [])
    for name, needs_tensorflow in MISTAKES.items()])
def test_mistake_says_what_the_document_quotes(mistakes_server, mistake):
    (block,) = [block for block in blocks("says") if block.args[0] == mistake]
    command, _, output = block.text.partition("\n")
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:4] == ["python", "-m", "modeld", "metadata"] and len(argv) == 5, command
    model = argv[4]
    result = cli(mistakes_server, argv[3:])
    assert result.returncode == 1, f"{command}: exit {result.returncode}, {result.stdout}"
    said = " ".join(result.stderr.split())
    position = 0
    for fragment in " ".join(output.split()).split("…"):
        fragment = fragment.strip()
        found = said.find(fragment, position)
        assert found >= 0, (f"{command} does not say (after {said[:position]!r}):\n{fragment!r}"
                            f"\nit says:\n{said}")
        position = found + len(fragment)
    status = cli(mistakes_server, ["status", "--model", model])
    assert status.returncode == 1 and json.loads(status.stdout)["models"] == {model: False}
    # The log says it too.
    assert any(f"model '{model}'" in line and "hint: " in line
               for line in mistakes_server.log_lines()), mistakes_server.log
