"""ONNX models of test_onnx.py, written with the venv's exporters (scikit-learn through
skl2onnx, XGBoost and LightGBM through onnxmltools, PyTorch through torch.onnx, and
onnx.helper) and cached by content, so only the first run after a change pays for them (a few
seconds).

    .venv/bin/python tests/integration/onnx_models.py      # prints <folder>/repository
    ensure() -> Path                                        # <folder>, from a test

The folder is build/test-models/onnx-<hash>, the hash over this file, the versions of the
libraries that write and check the models and the machine type; ensure() writes it in a
subprocess (MODELD_GENERATOR_PYTHON, default this interpreter), so the test process never
imports onnxruntime, torch or the converters. It holds, in repository/ (no config.pbtxt
unless stated; the names, datatypes and shapes are what onnxruntime's session shows, N a
symbolic batch dimension):

  sklearn_logreg/1/model.onnx      Pipeline(StandardScaler, LogisticRegression), 3 classes,
                                   skl2onnx with zipmap=False:
                                   x FP32 [N, 4] -> label INT64 [N], probabilities FP32 [N, 3]
  sklearn_zipmap/1/model.onnx      the same pipeline with ZipMap (skl2onnx's default):
                                   x FP32 [N, 4] -> output_label INT64 [N],
                                   output_probability seq(map(int64, float)): refused by modeld
  sklearn_forest/1/model.onnx      Pipeline(StandardScaler, RandomForestClassifier(10 trees,
                                   depth 4)), 3 classes, skl2onnx with zipmap=False:
                                   x FP32 [N, 5] -> label INT64 [N], probabilities FP32 [N, 3]
  text_tfidf/1/model.onnx          Pipeline(TfidfVectorizer, LogisticRegression) on a seeded
                                   corpus of short texts (accented and CJK words among them), 3
                                   classes, skl2onnx with zipmap=False and a string input:
                                   text BYTES [N, 1] -> label INT64 [N], probabilities FP32
                                   [N, 3]. Two converter options (TEXT_OPTIONS) make it run
                                   here and agree with scikit-learn: the StringNormalizer's
                                   locale (onnxruntime defaults to en_US.UTF-8, which a
                                   machine without that locale, this one, cannot construct:
                                   the session fails to load) and a Unicode tokenizer pattern
                                   (skl2onnx replaces scikit-learn's default with an ASCII one,
                                   which splits "café" into "caf"). When the converter or
                                   onnxruntime cannot make or run it, the folder is left out and
                                   TEXT_UNAVAILABLE (next to repository/) says why: the tests
                                   of the model fail with that reason.
  xgboost/1/model.onnx             XGBClassifier (10 trees, depth 3, 3 classes), onnxmltools:
                                   x FP32 [N, 6] -> label INT64 [N], probabilities FP32 [N, 3]
  lightgbm/1/model.onnx            LGBMRegressor (10 trees, 7 leaves), onnxmltools:
                                   x FP32 [N, 5] -> variable FP32 [N, 1]
  torch_mlp/1/model.onnx           nn.Sequential(Linear(16, 64), GELU, Linear(64, 8)) through
  torch_mlp/1/model.onnx.data      torch.onnx.export, its weights in the external data file:
                                   x FP32 [batch, 16] -> y FP32 [batch, 8]
  fixed/1/model.onnx               onnx.helper, no dynamic dimension: a FP32 [3, 4] ->
                                   b = Relu(a) FP32 [3, 4]
  all_types/1/model.onnx           onnx.helper, one Identity per datatype: in_<type> [batch, 2]
                                   -> out_<type> [batch, 2], <type> in ALL_TYPES
  stated_ok/                       sklearn_logreg's model.onnx with a config.pbtxt that states
                                   it (max_batch_size 8; label dims [1], reshape [])
  stated_bad_type/, stated_bad_dims/, stated_bad_name/
                                   the same with a config that states x TYPE_FP64, x dims [5],
                                   an input y (STATED_BAD): each must fail to load
  corrupt_random/1/model.onnx      4096 seeded random bytes, no config (CORRUPT): must fail to
                                   load, as onnxruntime in Python fails to open it
  corrupt_truncated/1/model.onnx   the first half of sklearn_logreg's model.onnx, no config:
                                   the same

and in references/<model>/<case>/ the inputs (input_<tensor>.npy) and onnxruntime's outputs
for them (output_<tensor>.npy), from a Python InferenceSession on the written file: cases b1,
b3, b7 (rows) of sklearn_logreg, sklearn_forest, text_tfidf, xgboost, lightgbm and torch_mlp,
rows64 of sklearn_logreg (for one-row requests), clients of torch_mlp and sklearn_forest
(CLIENTS * CLIENT_REQUESTS * CLIENT_ROWS distinct rows, a slice for each request of each
concurrent client), and b3 of all_types (BYTES as object arrays of bytes: load them with
allow_pickle=True, which load_references does). references/summary.json holds the largest
differences between onnxruntime and the original library on those inputs, and onnxruntime's
reasons for refusing the CORRUPT files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import time
from pathlib import Path

import model_cache

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = model_cache.CACHE_ROOT
PREFIX = "onnx-"
SEED = 20261215
# The libraries whose output (or whose check of it) the files depend on.
LIBRARIES = ("onnxruntime", "onnx", "skl2onnx", "onnxmltools", "scikit-learn", "xgboost-cpu",
             "lightgbm", "torch", "numpy")

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
# What modeld completes for a model whose every tensor starts with a dynamic dimension.
COMPLETED_MAX_BATCH = 256
# ai.onnx opset of the skl2onnx and onnx.helper models (onnxruntime 1.32 runs up to 23+).
OPSET = 17
ML_OPSET = 3
# onnxmltools 1.16's converters go up to ai.onnx opset 15 ("the converter support (15)").
ONNXMLTOOLS_OPSET = 15

LOGREG_FEATURES, LOGREG_CLASSES = 4, 3
FOREST_FEATURES, FOREST_CLASSES = 5, 3
XGB_FEATURES, XGB_CLASSES = 6, 3
LGBM_FEATURES = 5
MLP_IN, MLP_HIDDEN, MLP_OUT = 16, 64, 8
FIXED_SHAPE = (3, 4)
STATED_MAX_BATCH = 8

BATCH_CASES = {"b1": 1, "b3": 3, "b7": 7}
ROWS_CASE, ROWS = "rows64", 64
# Concurrent clients (test_onnx.py), each with its own channel: request r of client c sends
# 1 + (c + r) % CLIENT_ROWS rows of the `clients` case, from a CLIENT_ROWS-row slice of its
# own (client_rows gives them).
CLIENTS_CASE, CLIENTS, CLIENT_REQUESTS, CLIENT_ROWS = "clients", 32, 4, 3
CLIENT_MODELS = ("torch_mlp", "sklearn_forest")
ALL_TYPES_CASE, ALL_TYPES_ROWS = "b3", 3

# The onnx.helper model's datatypes: ONNX type name (the tensor names' suffix) ->
# (onnx.TensorProto enum name, KServe datatype, config.pbtxt datatype).
ALL_TYPES = {
    "bool": ("BOOL", "BOOL", "TYPE_BOOL"),
    "int8": ("INT8", "INT8", "TYPE_INT8"),
    "int16": ("INT16", "INT16", "TYPE_INT16"),
    "int32": ("INT32", "INT32", "TYPE_INT32"),
    "int64": ("INT64", "INT64", "TYPE_INT64"),
    "uint8": ("UINT8", "UINT8", "TYPE_UINT8"),
    "uint16": ("UINT16", "UINT16", "TYPE_UINT16"),
    "uint32": ("UINT32", "UINT32", "TYPE_UINT32"),
    "uint64": ("UINT64", "UINT64", "TYPE_UINT64"),
    "float16": ("FLOAT16", "FP16", "TYPE_FP16"),
    "float": ("FLOAT", "FP32", "TYPE_FP32"),
    "double": ("DOUBLE", "FP64", "TYPE_FP64"),
    "string": ("STRING", "BYTES", "TYPE_STRING"),
}
# Strings of the all_types input: empty, non-ASCII UTF-8, an embedded zero byte, a long one
# (all valid UTF-8: onnxruntime's Python API takes and gives str).
STRINGS = [b"", "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c".encode(), b"a\x00b", b"x",
           b"Mixed Case 123", b"y" * 300]

# The text model: the words of each of its classes (each training text is a seeded draw of
# them, with some of TEXT_COMMON), and the texts of the requests (b1, b3, b7 draw from them):
# non-ASCII and upper-case letters, an empty text, words it never saw, a symbol.
TEXT_MODEL = "text_tfidf"
TEXT_UNAVAILABLE = f"{TEXT_MODEL}_unavailable.txt"
TEXT_TOPICS = (
    ("cat", "dog", "puppy", "kitten", "pets", "bark", "purr", "vet", "leash", "paw"),
    ("café", "crème", "brûlée", "jalapeño", "façade", "naïve", "smörgåsbord", "über",
     "ramen", "日本料理"),
    ("stock", "market", "bonds", "shares", "yield", "crash", "rally", "dividend", "bank",
     "fund"),
)
TEXT_COMMON = ("the", "and", "with", "today", "very", "good", "new", "my")
TEXT_REQUESTS = (
    "The cat and the dog", "CAFÉ CRÈME with jalapeño", "stock market RALLY today",
    "", "naïve Façade über alles", "日本料理 and ramen", "a totally unseen sentence",
    "Dividend ✓ yield ✓ bank", "puppy café shares", "smörgåsbord", "BONDS crash", "Purr",
)
# skl2onnx's TfidfVectorizer options (see the module docstring).
TEXT_OPTIONS = {"locale": "C.UTF-8", "tokenexp": r"[\p{L}\p{N}_]+"}

# model -> (inputs, outputs) as modeld completes its config: (name, config datatype, dims,
# reshape or None), dims after the batch dimension; and its max_batch_size.
COMPLETED = {
    "sklearn_logreg": (
        [("x", "TYPE_FP32", [LOGREG_FEATURES], None)],
        [("label", "TYPE_INT64", [1], []),
         ("probabilities", "TYPE_FP32", [LOGREG_CLASSES], None)]),
    "sklearn_forest": (
        [("x", "TYPE_FP32", [FOREST_FEATURES], None)],
        [("label", "TYPE_INT64", [1], []),
         ("probabilities", "TYPE_FP32", [FOREST_CLASSES], None)]),
    TEXT_MODEL: (
        [("text", "TYPE_STRING", [1], None)],
        [("label", "TYPE_INT64", [1], []),
         ("probabilities", "TYPE_FP32", [len(TEXT_TOPICS)], None)]),
    "xgboost": (
        [("x", "TYPE_FP32", [XGB_FEATURES], None)],
        [("label", "TYPE_INT64", [1], []),
         ("probabilities", "TYPE_FP32", [XGB_CLASSES], None)]),
    "lightgbm": (
        [("x", "TYPE_FP32", [LGBM_FEATURES], None)],
        [("variable", "TYPE_FP32", [1], None)]),
    "torch_mlp": (
        [("x", "TYPE_FP32", [MLP_IN], None)],
        [("y", "TYPE_FP32", [MLP_OUT], None)]),
    "fixed": (
        [("a", "TYPE_FP32", list(FIXED_SHAPE), None)],
        [("b", "TYPE_FP32", list(FIXED_SHAPE), None)]),
    "all_types": (
        [(f"in_{t}", config, [2], None) for t, (_, _, config) in ALL_TYPES.items()],
        [(f"out_{t}", config, [2], None) for t, (_, _, config) in ALL_TYPES.items()]),
}
MAX_BATCH = {model: COMPLETED_MAX_BATCH for model in COMPLETED}
MAX_BATCH["fixed"] = 0

# Models that serve (stated_ok under its own config) and those modeld must refuse.
SERVING = (*COMPLETED, "stated_ok")
REFERENCE_MODELS = ("sklearn_logreg", "sklearn_forest", TEXT_MODEL, "xgboost", "lightgbm",
                    "torch_mlp", "all_types")


def stated_config(name, x_name="x", x_type="TYPE_FP32", x_dims=LOGREG_FEATURES):
    """config.pbtxt stating sklearn_logreg's model.onnx (input changed as given)."""
    return (f'name: "{name}"\nplatform: "{PLATFORM}"\nmax_batch_size: {STATED_MAX_BATCH}\n'
            f'input [ {{ name: "{x_name}" data_type: {x_type} dims: [ {x_dims} ] }} ]\n'
            "output [\n"
            f'  {{ name: "label" data_type: TYPE_INT64 dims: [ 1 ] reshape {{ shape: [ ] }} }},\n'
            f'  {{ name: "probabilities" data_type: TYPE_FP32 dims: [ {LOGREG_CLASSES} ] }}\n'
            "]\n")


# model -> config.pbtxt of the stated models that must fail to load.
STATED_BAD = {
    "stated_bad_type": stated_config("stated_bad_type", x_type="TYPE_FP64"),
    "stated_bad_dims": stated_config("stated_bad_dims", x_dims=5),
    "stated_bad_name": stated_config("stated_bad_name", x_name="y"),
}
# Files onnxruntime cannot open, served with no config: model -> how its model.onnx is made.
CORRUPT = {
    "corrupt_random": "4096 seeded random bytes",
    "corrupt_truncated": "the first half of sklearn_logreg's model.onnx",
}
REFUSED = ("sklearn_zipmap", *STATED_BAD, *CORRUPT)


def content_key():
    """The cache key: what the files depend on, without importing the libraries."""
    return model_cache.content_key(
        [Path(__file__).read_bytes()]
        + [f"{name}=={importlib.metadata.version(name)}".encode() for name in LIBRARIES])


def ensure(cache_root=CACHE_ROOT, python=None):
    """The folder for the current content, written (in a subprocess) when it is missing."""
    return model_cache.ensure(Path(__file__), PREFIX, content_key(), "ONNX test models",
                              cache_root, python)


def unavailable(folder):
    """{model: why it was not written}: the text model, when the converter or onnxruntime
    could not make or run it (TEXT_UNAVAILABLE); empty otherwise."""
    path = Path(folder) / TEXT_UNAVAILABLE
    return {TEXT_MODEL: path.read_text()} if path.is_file() else {}


def load_references(folder):
    """{model: {case: ({input: array}, {output: array})}} as onnxruntime gave them, shaped as
    onnxruntime shapes them (label [N], not the API's [N, 1]); BYTES as object arrays of
    bytes. A model of unavailable() has none."""
    import numpy as np

    def arrays(case, kind):
        return {path.stem.removeprefix(f"{kind}_"): np.load(path, allow_pickle=True)
                for path in sorted(case.glob(f"{kind}_*.npy"))}

    references = {}
    for model in REFERENCE_MODELS:
        if model in unavailable(folder):
            continue
        references[model] = {
            case.name: (arrays(case, "input"), arrays(case, "output"))
            for case in sorted((Path(folder) / "references" / model).iterdir())}
    return references


def client_rows(client, request):
    """The rows of the `clients` case that request `request` of client `client` sends."""
    start = (client * CLIENT_REQUESTS + request) * CLIENT_ROWS
    return slice(start, start + 1 + (client + request) % CLIENT_ROWS)


# --- writing (the converters and onnxruntime from here on) -----------------------------------


def _limit_threads():
    """One thread per library: the machine is shared, and the models are tiny."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"


def _session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _describe(session):
    """{"inputs": [[name, type, shape]], "outputs": [...]} as onnxruntime shows them."""
    return {kind: [[t.name, t.type, list(t.shape)] for t in tensors]
            for kind, tensors in (("inputs", session.get_inputs()),
                                  ("outputs", session.get_outputs()))}


def _save_model(model_proto, path):
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    # The converters name the graph with a random UUID; the model's folder keeps the bytes
    # the same from one run to the next.
    model_proto.graph.name = path.parent.parent.name
    # One entry per domain, in a fixed order (skl2onnx 1.20 lists the default domain twice
    # when target_opset is a dict, and orders the domains as a set iterates).
    opsets = {}
    for opset in model_proto.opset_import:
        opsets[opset.domain] = max(opset.version, opsets.get(opset.domain, 0))
    del model_proto.opset_import[:]
    for domain, version in sorted(opsets.items()):
        model_proto.opset_import.add(domain=domain, version=version)
    onnx.checker.check_model(model_proto)
    onnx.save_model(model_proto, str(path))


def _sklearn_pipeline(np):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(n_samples=300, n_features=LOGREG_FEATURES, n_informative=3,
                               n_redundant=1, n_classes=LOGREG_CLASSES, n_clusters_per_class=1,
                               random_state=SEED % 2**31)
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("logreg", LogisticRegression(max_iter=500))])
    pipeline.fit(x.astype(np.float32), y)
    return pipeline


def _write_sklearn(repository, np):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    pipeline = _sklearn_pipeline(np)
    initial = [("x", FloatTensorType([None, LOGREG_FEATURES]))]
    opsets = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    plain = convert_sklearn(pipeline, initial_types=initial, target_opset=opsets,
                            options={id(pipeline): {"zipmap": False}})
    _save_model(plain, repository / "sklearn_logreg" / "1" / "model.onnx")
    zipmap = convert_sklearn(pipeline, initial_types=initial, target_opset=opsets)
    _save_model(zipmap, repository / "sklearn_zipmap" / "1" / "model.onnx")

    def original(x):
        return {"label": pipeline.predict(x), "probabilities": pipeline.predict_proba(x)}

    return original


def _write_forest(repository, np):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    x, y = make_classification(n_samples=300, n_features=FOREST_FEATURES, n_informative=4,
                               n_redundant=1, n_classes=FOREST_CLASSES, n_clusters_per_class=1,
                               random_state=(SEED + 1) % 2**31)
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("forest", RandomForestClassifier(n_estimators=10, max_depth=4,
                                                           random_state=SEED % 2**31,
                                                           n_jobs=1))])
    pipeline.fit(x.astype(np.float32), y)
    initial = [("x", FloatTensorType([None, FOREST_FEATURES]))]
    proto = convert_sklearn(pipeline, initial_types=initial,
                            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
                            options={id(pipeline): {"zipmap": False}})
    _save_model(proto, repository / "sklearn_forest" / "1" / "model.onnx")

    def original(x):
        return {"label": pipeline.predict(x), "probabilities": pipeline.predict_proba(x)}

    return original


def _text_corpus(np):
    """(texts, classes): 20 seeded texts per topic of TEXT_TOPICS, a few common words in each."""
    rng = np.random.default_rng(SEED + 5)
    texts, classes = [], []
    for topic, words in enumerate(TEXT_TOPICS):
        for _ in range(20):
            chosen = list(rng.choice(words, size=int(rng.integers(2, 5)), replace=False))
            chosen += list(rng.choice(TEXT_COMMON, size=int(rng.integers(0, 3))))
            rng.shuffle(chosen)
            texts.append(" ".join(chosen))
            classes.append(topic)
    return texts, np.array(classes)


def _write_text(repository, np):
    """text_tfidf; returns its original's function, or raises with the converter's or
    onnxruntime's error (write() records it in TEXT_UNAVAILABLE)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    texts, classes = _text_corpus(np)
    pipeline = Pipeline([("tfidf", TfidfVectorizer()),
                         ("logreg", LogisticRegression(max_iter=500))])
    pipeline.fit(texts, classes)
    proto = convert_sklearn(pipeline, initial_types=[("text", StringTensorType([None, 1]))],
                            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
                            options={id(pipeline): {"zipmap": False},
                                     id(pipeline.steps[0][1]): dict(TEXT_OPTIONS)})
    path = repository / TEXT_MODEL / "1" / "model.onnx"
    _save_model(proto, path)
    _session(path)  # onnxruntime opens it (or raises, and the model is unavailable)

    def original(text):
        decoded = [value.decode("utf-8") for value in text[:, 0]]
        return {"label": pipeline.predict(decoded),
                "probabilities": pipeline.predict_proba(decoded)}

    return original


def _text_inputs(rows, rng, np):
    """[rows, 1] distinct texts of TEXT_REQUESTS, UTF-8 encoded, as an object array of bytes."""
    array = np.empty((rows, 1), dtype=object)
    chosen = rng.permutation(len(TEXT_REQUESTS))[:rows]
    array[:, 0] = [TEXT_REQUESTS[i].encode() for i in chosen]
    return array


def _write_corrupt(repository, np):
    """The CORRUPT models; returns {model: onnxruntime's reason for refusing it}."""
    random = repository / "corrupt_random" / "1" / "model.onnx"
    truncated = repository / "corrupt_truncated" / "1" / "model.onnx"
    logreg = (repository / "sklearn_logreg" / "1" / "model.onnx").read_bytes()
    for path, data in ((random, np.random.default_rng(SEED + 20).bytes(4096)),
                       (truncated, logreg[:len(logreg) // 2])):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    reasons = {}
    for model in CORRUPT:
        try:
            _session(repository / model / "1" / "model.onnx")
        except Exception as error:  # onnxruntime's Fail, InvalidProtobuf, ...
            reasons[model] = f"{type(error).__name__}: {error}"
        else:
            raise AssertionError(f"onnxruntime opens {model}'s model.onnx")
    return reasons


def _write_xgboost(repository, np):
    import xgboost
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(SEED + 3)
    x = rng.standard_normal((300, XGB_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 0.8)
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, learning_rate=0.3,
                                  random_state=SEED % 2**31, n_jobs=1, tree_method="hist")
    model.fit(x, y)
    assert list(model.classes_) == list(range(XGB_CLASSES)), model.classes_
    proto = convert_xgboost(model, initial_types=[("x", FloatTensorType([None, XGB_FEATURES]))],
                            target_opset=ONNXMLTOOLS_OPSET)
    _save_model(proto, repository / "xgboost" / "1" / "model.onnx")

    def original(x):
        return {"label": model.predict(x), "probabilities": model.predict_proba(x)}

    return original


def _write_lightgbm(repository, np):
    import lightgbm
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(SEED + 4)
    x = rng.standard_normal((300, LGBM_FEATURES)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + np.sin(3 * x[:, 0])
         + 0.1 * rng.standard_normal(300))
    model = lightgbm.LGBMRegressor(n_estimators=10, num_leaves=7, learning_rate=0.2,
                                   random_state=SEED % 2**31, n_jobs=1, verbose=-1,
                                   deterministic=True, force_row_wise=True)
    model.fit(x, y)
    proto = convert_lightgbm(model, initial_types=[("x", FloatTensorType([None, LGBM_FEATURES]))],
                             target_opset=ONNXMLTOOLS_OPSET)
    _save_model(proto, repository / "lightgbm" / "1" / "model.onnx")

    def original(x):
        return {"variable": model.predict(x).reshape(-1, 1)}

    return original


def _write_torch_mlp(repository, np):
    import io
    import warnings

    import onnx
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    mlp = nn.Sequential(nn.Linear(MLP_IN, MLP_HIDDEN), nn.GELU(),
                        nn.Linear(MLP_HIDDEN, MLP_OUT)).eval()
    # The TorchScript-based exporter (dynamo=False): the dynamo one needs onnxscript, which
    # the venv does not have. It writes external data only past 2 GiB, so the weights are
    # moved out with onnx.save_model below.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mlp, (torch.zeros(2, MLP_IN),), buffer, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=OPSET)
    proto = onnx.load_model_from_string(buffer.getvalue())
    folder = repository / "torch_mlp" / "1"
    folder.mkdir(parents=True)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(folder / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    data, graph = folder / "model.onnx.data", folder / "model.onnx"
    weights = 4 * (MLP_IN * MLP_HIDDEN + MLP_HIDDEN + MLP_HIDDEN * MLP_OUT + MLP_OUT)
    assert data.is_file() and data.stat().st_size >= weights, "no external data written"
    assert graph.stat().st_size < 4096, f"model.onnx holds {graph.stat().st_size} bytes"
    onnx.checker.check_model(str(graph))  # with its external data, by path

    def original(x):
        with torch.no_grad():
            return {"y": mlp(torch.from_numpy(x)).numpy()}

    return original


def _write_fixed(repository):
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, list(FIXED_SHAPE))
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, list(FIXED_SHAPE))
    graph = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "fixed", [a], [b])
    _save_model(_helper_model(graph), repository / "fixed" / "1" / "model.onnx")


def _write_all_types(repository):
    from onnx import TensorProto, helper

    inputs, outputs, nodes = [], [], []
    for name, (onnx_type, _, _) in ALL_TYPES.items():
        element = getattr(TensorProto, onnx_type)
        inputs.append(helper.make_tensor_value_info(f"in_{name}", element, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", element, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"],
                                      name=f"identity_{name}"))
    graph = helper.make_graph(nodes, "all_types", inputs, outputs)
    _save_model(_helper_model(graph), repository / "all_types" / "1" / "model.onnx")


def _helper_model(graph):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="modeld onnx_models.py")
    model.ir_version = 8  # what opset 17 came with; any onnxruntime of the last years reads it
    return model


def _all_types_inputs(np):
    """{in_<type>: [3, 2]} with each type's extremes in the first row."""
    rng = np.random.default_rng(SEED + 7)
    shape = (ALL_TYPES_ROWS, 2)
    inputs = {}
    for name in ALL_TYPES:
        if name == "string":
            array = np.empty(shape, dtype=object)
            array.ravel()[:] = [STRINGS[i % len(STRINGS)] for i in range(array.size)]
        elif name == "bool":
            array = np.array([[True, False], [False, True], [True, True]])
        elif name in ("float16", "float", "double"):
            dtype = {"float16": np.float16, "float": np.float32, "double": np.float64}[name]
            array = (rng.standard_normal(shape) * 100).astype(dtype)
            array[0] = [np.finfo(dtype).max, -0.0]
            array[1, 0] = np.finfo(dtype).tiny
        else:
            dtype = np.dtype(name)
            info = np.iinfo(dtype)
            array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
            array[0] = [info.min, info.max]
        inputs[f"in_{name}"] = array
    return inputs


def _run(session, inputs, np):
    """onnxruntime's outputs {name: array}; BYTES in and out as object arrays of bytes (its
    Python API takes and gives str)."""
    feed = {}
    for name, array in inputs.items():
        if array.dtype == object:
            text = np.empty(array.shape, dtype=object)
            text.ravel()[:] = [v.decode("utf-8") for v in array.ravel()]
            array = text
        feed[name] = array
    outputs = {}
    for meta, value in zip(session.get_outputs(), session.run(None, feed)):
        value = np.asarray(value)
        if value.dtype == object:
            raw = np.empty(value.shape, dtype=object)
            raw.ravel()[:] = [v.encode("utf-8") for v in value.ravel()]
            value = raw
        outputs[meta.name] = value
    return outputs


def _save_case(folder, inputs, outputs, np):
    folder.mkdir(parents=True)
    for kind, arrays in (("input", inputs), ("output", outputs)):
        for name, array in arrays.items():
            np.save(folder / f"{kind}_{name}.npy", array, allow_pickle=array.dtype == object)


def write(out):
    """Writes everything the module docstring lists into `out` (which must not exist)."""
    _limit_threads()
    started = time.monotonic()
    import numpy as np

    out = Path(out)
    repository, references = out / "repository", out / "references"
    repository.mkdir(parents=True)
    originals = {
        "sklearn_logreg": (_write_sklearn(repository, np), LOGREG_FEATURES),
        "sklearn_forest": (_write_forest(repository, np), FOREST_FEATURES),
        "xgboost": (_write_xgboost(repository, np), XGB_FEATURES),
        "lightgbm": (_write_lightgbm(repository, np), LGBM_FEATURES),
        "torch_mlp": (_write_torch_mlp(repository, np), MLP_IN),
    }
    try:
        originals[TEXT_MODEL] = (_write_text(repository, np), None)
    except Exception as error:  # recorded: the text model's tests fail with it
        shutil.rmtree(repository / TEXT_MODEL, ignore_errors=True)
        (out / TEXT_UNAVAILABLE).write_text(
            f"{TEXT_MODEL} could not be made with skl2onnx "
            f"{importlib.metadata.version('skl2onnx')} and run with onnxruntime "
            f"{importlib.metadata.version('onnxruntime')}: {type(error).__name__}: {error}\n")
    _write_fixed(repository)
    _write_all_types(repository)
    logreg = repository / "sklearn_logreg" / "1" / "model.onnx"
    for name, config in {"stated_ok": stated_config("stated_ok"), **STATED_BAD}.items():
        (repository / name / "1").mkdir(parents=True)
        shutil.copyfile(logreg, repository / name / "1" / "model.onnx")
        (repository / name / "config.pbtxt").write_text(config)

    summary = {"tensors": {}, "differences": {}}
    sessions = {}
    for model in sorted(p.name for p in repository.iterdir()):
        sessions[model] = _session(repository / model / "1" / "model.onnx")
        summary["tensors"][model] = _describe(sessions[model])
    _check_tensors(summary["tensors"])
    summary["corrupt"] = _write_corrupt(repository, np)

    rng = np.random.default_rng(SEED + 10)
    for model, (original, features) in originals.items():
        cases = dict(BATCH_CASES)
        if model == "sklearn_logreg":
            cases[ROWS_CASE] = ROWS
        if model in CLIENT_MODELS:
            cases[CLIENTS_CASE] = CLIENTS * CLIENT_REQUESTS * CLIENT_ROWS
        largest = 0.0
        for case, rows in cases.items():
            if model == TEXT_MODEL:
                tensor, x = "text", _text_inputs(rows, rng, np)
            else:
                tensor, x = "x", rng.standard_normal((rows, features)).astype(np.float32)
            outputs = _run(sessions[model], {tensor: x}, np)
            _save_case(references / model / case, {tensor: x}, outputs, np)
            # The conversion is right: onnxruntime agrees with the library that trained it.
            for name, want in original(x).items():
                got = outputs[name]
                assert got.shape == want.shape, (model, name, got.shape, want.shape)
                if got.dtype.kind == "f":
                    largest = max(largest, float(np.abs(got - want).max()))
                else:
                    np.testing.assert_array_equal(got, want, err_msg=f"{model} {name}")
        assert largest < 1e-4, f"{model}: onnxruntime differs from the original by {largest}"
        summary["differences"][model] = largest
        if model == "sklearn_logreg":  # stated_ok is the same file
            again = _run(sessions["stated_ok"], {"x": x}, np)
            for name, value in again.items():
                np.testing.assert_array_equal(value, outputs[name])

    inputs = _all_types_inputs(np)
    outputs = _run(sessions["all_types"], inputs, np)
    for name, array in inputs.items():  # Identity: bit for bit
        got = outputs["out_" + name.removeprefix("in_")]
        assert got.dtype == array.dtype and got.shape == array.shape, (name, got.dtype)
        assert got.tolist() == array.tolist() if array.dtype == object else (
            got.tobytes() == array.tobytes()), name
    _save_case(references / "all_types" / ALL_TYPES_CASE, inputs, outputs, np)

    x = rng.standard_normal(FIXED_SHAPE).astype(np.float32)
    np.testing.assert_array_equal(_run(sessions["fixed"], {"a": x}, np)["b"], np.maximum(x, 0))

    summary["seconds"] = round(time.monotonic() - started, 2)
    summary["versions"] = {name: importlib.metadata.version(name) for name in LIBRARIES}
    (references / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({"differences": summary["differences"], "seconds": summary["seconds"]}))


def _check_tensors(tensors):
    """What onnxruntime shows is what COMPLETED (and so test_onnx.py) expects."""
    onnx_type = {config: f"tensor({'float' if t == 'float' else t})"
                 for t, (_, _, config) in ALL_TYPES.items()}
    for model, (inputs, outputs) in COMPLETED.items():
        if model == TEXT_MODEL and model not in tensors:  # unavailable: recorded
            continue
        described = tensors[model]
        for kind, expected in (("inputs", inputs), ("outputs", outputs)):
            got = described[kind]
            assert [t[0] for t in got] == [t[0] for t in expected], (model, kind, got)
            for (name, type_, shape), (_, config, dims, reshape) in zip(got, expected):
                assert type_ == onnx_type[config], (model, name, type_, config)
                if MAX_BATCH[model] == 0:
                    assert shape == dims, (model, name, shape, dims)
                    continue
                # A leading dynamic dimension (symbolic or unknown), then the item's dims.
                assert shape and not isinstance(shape[0], int), (model, name, shape)
                item = shape[1:]
                assert item == ([] if reshape == [] else dims), (model, name, shape, dims)
    zipmap = tensors["sklearn_zipmap"]["outputs"]
    assert [t[1] for t in zipmap] == ["tensor(int64)", "seq(map(int64,tensor(float)))"], zipmap
    for model in ("stated_ok", *STATED_BAD):
        assert tensors[model] == tensors["sklearn_logreg"], model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, help="write into this new folder (no cache)")
    args = parser.parse_args()
    if args.write:
        write(args.write)
    else:
        print(ensure() / "repository")


if __name__ == "__main__":
    main()
