"""TensorFlow SavedModels for the end-to-end tests, written at test time with the venv's
TensorFlow (nothing is downloaded, nothing is committed).

    generate(repository) -> {model name: folder}
    references(repository) -> {model name: callable({input key: array}) -> {output key: array}}
    write_trainable_regression(savedmodel_dir), trainable_regression_config(...)
                              a SavedModel with a `train` signature, for online learning

`generate` writes into `repository`:

  linear/1/saved_model.pb (+ variables/)     TensorFlow Serving's layout, NO config.pbtxt:
                                             y = x * 3 + 2, x FP32 [-1, 1] -> y FP32 [-1, 1]
  keras_mlp/config.pbtxt                     Keras 3 MLP 64 -> 128 relu -> 10 (fixed seeded
  keras_mlp/1/model.savedmodel/              weights), Triton's layout, max_batch_size 64,
                                             dynamic_batching; names = the signature's keys
  strings/1/saved_model.pb                   BYTES in and out, no config: text [-1] ->
                                             length INT32 [-1] (bytes), upper BYTES [-1]
  two_signatures/1/saved_model.pb            serving_default: doubled = 2 x; triple:
                                             tripled = 3 x (x FP32 [-1, 4]); no config
  two_signatures_triple/config.pbtxt         the same SavedModel, Triton's layout, config
  two_signatures_triple/1/model.savedmodel/  with signature_name "triple" and no inputs or
                                             outputs (filled from the signature)
  dtypes/1/saved_model.pb                    every dtype of the contract, no config: inputs
                                             in_<kserve dtype> [-1, 3] -> out_<...> [-1, 3],
                                             each row reversed (tf.reverse along axis 1)
  no_batch/1/saved_model.pb                  a signature without a leading -1, no config:
                                             x FP32 [2, -1] -> y = x + 1 [2, -1]
  corrupt/config.pbtxt                       a config, and garbage bytes as saved_model.pb
  corrupt/1/model.savedmodel/saved_model.pb

TensorFlow is imported inside the functions only, so importing this module is cheap.
"""

import os
import shutil
from pathlib import Path

import numpy as np

PLATFORM = "tensorflow_savedmodel"
LINEAR_W = 3.0
LINEAR_B = 2.0
KERAS_MLP_SEED = 20261124
KERAS_MLP_SIZES = (64, 128, 10)
KERAS_MLP_MAX_BATCH = 64

# The models generate() writes (corrupt is one too: it is planned, and fails to load).
MODELS = ("linear", "keras_mlp", "strings", "two_signatures", "two_signatures_triple", "dtypes",
          "no_batch", "corrupt")
GOOD_MODELS = MODELS[:-1]


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _save_module(module, path, signatures):
    tf = _tf()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(path), signatures=signatures)
    assert (path / "saved_model.pb").is_file(), f"no saved_model.pb under {path}"


def write_linear(folder):
    """y = x * W + b in TensorFlow Serving's layout (<folder>/1/saved_model.pb), no config."""
    tf = _tf()

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[LINEAR_W]], dtype=tf.float32, name="w")
            self.b = tf.Variable([LINEAR_B], dtype=tf.float32, name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.matmul(x, self.w) + self.b}

    module = Linear()
    _save_module(module, Path(folder) / "1", {"serving_default": module.serve})


def keras_mlp_model():
    """The Keras 3 MLP, its weights drawn from a fixed numpy seed (biases non-zero too)."""
    tf = _tf()  # noqa: F841  (keras 3 runs on the TensorFlow backend here)
    import keras

    n_in, n_hidden, n_out = KERAS_MLP_SIZES
    model = keras.Sequential(
        [
            keras.Input((n_in,), name="x"),
            keras.layers.Dense(n_hidden, activation="relu", name="hidden"),
            keras.layers.Dense(n_out, name="logits"),
        ],
        name="keras_mlp",
    )
    rng = np.random.default_rng(KERAS_MLP_SEED)
    model.get_layer("hidden").set_weights([
        rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_hidden)).astype(np.float32),
        rng.normal(0, 0.1, n_hidden).astype(np.float32),
    ])
    model.get_layer("logits").set_weights([
        rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, n_out)).astype(np.float32),
        rng.normal(0, 0.1, n_out).astype(np.float32),
    ])
    return model


def signature_tensors(savedmodel_dir, signature="serving_default"):
    """([(input key, tf dtype name, shape)], [(output key, ...)]) of a SavedModel's signature."""
    tf = _tf()
    function = tf.saved_model.load(str(savedmodel_dir)).signatures[signature]
    _, inputs = function.structured_input_signature
    outputs = function.structured_outputs

    def describe(specs):
        return [(key, spec.dtype.name, [-1 if d is None else d for d in spec.shape.as_list()])
                for key, spec in sorted(specs.items())]

    return describe(inputs), describe(outputs)


_TYPE = {"float32": "TYPE_FP32", "float64": "TYPE_FP64", "int32": "TYPE_INT32",
         "int64": "TYPE_INT64", "string": "TYPE_STRING", "bool": "TYPE_BOOL"}


def write_keras_mlp(folder):
    """The Keras MLP exported with model.export() in Triton's layout, with a config.pbtxt whose
    input and output names are the keys the export gave the serving_default signature."""
    folder = Path(folder)
    savedmodel = folder / "1" / "model.savedmodel"
    savedmodel.parent.mkdir(parents=True, exist_ok=True)
    keras_mlp_model().export(str(savedmodel), format="tf_saved_model", verbose=False)
    inputs, outputs = signature_tensors(savedmodel)

    def entries(tensors):
        return "\n".join(
            f'  {{ name: "{key}" data_type: {_TYPE[dtype]} '
            f'dims: [ {", ".join(map(str, shape[1:]))} ] }}'
            for key, dtype, shape in tensors)

    (folder / "config.pbtxt").write_text(
        f'platform: "{PLATFORM}"\n'
        f"max_batch_size: {KERAS_MLP_MAX_BATCH}\n"
        f"input [\n{entries(inputs)}\n]\n"
        f"output [\n{entries(outputs)}\n]\n"
        "dynamic_batching { }\n")
    return inputs, outputs


def write_strings(folder):
    """BYTES in and out: text [-1] -> length INT32 [-1] (in bytes), upper BYTES [-1] (ASCII
    letters upper-cased, every other byte kept)."""
    tf = _tf()

    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}

    module = Strings()
    _save_module(module, Path(folder) / "1", {"serving_default": module.serve})


def _two_signatures_module():
    tf = _tf()

    class TwoSignatures(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def double(self, x):
            return {"doubled": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def triple(self, x):
            return {"tripled": x * 3.0}

    return TwoSignatures()


TWO_SIGNATURES_TRIPLE_CONFIG = f"""\
platform: "{PLATFORM}"
max_batch_size: 8
parameters {{ key: "signature_name" value {{ string_value: "triple" }} }}
"""


def write_two_signatures(folder, triple_folder):
    module = _two_signatures_module()
    signatures = {"serving_default": module.double, "triple": module.triple}
    _save_module(module, Path(folder) / "1", signatures)
    triple_folder = Path(triple_folder)
    shutil.copytree(Path(folder) / "1", triple_folder / "1" / "model.savedmodel")
    (triple_folder / "config.pbtxt").write_text(TWO_SIGNATURES_TRIPLE_CONFIG)


# KServe datatype -> TensorFlow dtype name, as the contract maps them (DT_HALF -> FP16, ...).
DTYPES = {
    "FP16": "float16", "FP32": "float32", "FP64": "float64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "BOOL": "bool", "BYTES": "string",
}


def write_dtypes(folder):
    """One input and one output per dtype: in_<KSERVE> [-1, 3] -> out_<KSERVE> [-1, 3], each
    row reversed."""
    tf = _tf()
    specs = [tf.TensorSpec([None, 3], tf.as_dtype(name), name=f"in_{kserve.lower()}")
             for kserve, name in DTYPES.items()]
    keys = [f"{kserve.lower()}" for kserve in DTYPES]

    class Dtypes(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, *tensors):
            return {f"out_{key}": tf.reverse(t, [1]) for key, t in zip(keys, tensors)}

    module = Dtypes()
    _save_module(module, Path(folder) / "1", {"serving_default": module.serve})


def write_no_batch(folder):
    """x FP32 [2, -1] -> y = x + 1: no leading -1, so no batch dimension."""
    tf = _tf()

    class NoBatch(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x + 1.0}

    module = NoBatch()
    _save_module(module, Path(folder) / "1", {"serving_default": module.serve})


CORRUPT_CONFIG = f"""\
platform: "{PLATFORM}"
max_batch_size: 8
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }} ]
"""


def write_corrupt(folder):
    folder = Path(folder)
    savedmodel = folder / "1" / "model.savedmodel"
    (savedmodel / "variables").mkdir(parents=True)
    # Not a SavedModel protobuf: a truncated varint field, then noise.
    (savedmodel / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff" + bytes(range(256)) * 16)
    (folder / "config.pbtxt").write_text(CORRUPT_CONFIG)


def generate(repository):
    """Writes every model of MODELS into `repository` (created if needed); returns
    {model: folder}."""
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    write_linear(repository / "linear")
    write_keras_mlp(repository / "keras_mlp")
    write_strings(repository / "strings")
    write_two_signatures(repository / "two_signatures", repository / "two_signatures_triple")
    write_dtypes(repository / "dtypes")
    write_no_batch(repository / "no_batch")
    write_corrupt(repository / "corrupt")
    return {name: repository / name for name in MODELS}


# --- TensorFlow in Python: what the tests compare modeld's answers with ----------------------

# model -> (SavedModel folder under the model folder, signature)
_REFERENCE_SOURCES = {
    "linear": ("1", "serving_default"),
    "keras_mlp": ("1/model.savedmodel", "serving_default"),
    "strings": ("1", "serving_default"),
    "two_signatures": ("1", "serving_default"),
    "two_signatures_triple": ("1/model.savedmodel", "triple"),
    "dtypes": ("1", "serving_default"),
    "no_batch": ("1", "serving_default"),
}


def load_signature(savedmodel_dir, signature="serving_default"):
    """A callable({key: array}) -> {key: numpy array} running `signature` of the SavedModel in
    this process with tf.saved_model.load (what a Python web app does today)."""
    tf = _tf()
    loaded = tf.saved_model.load(str(savedmodel_dir))
    function = loaded.signatures[signature]
    _, specs = function.structured_input_signature

    def call(inputs):
        tensors = {key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()}
        return {key: value.numpy() for key, value in function(**tensors).items()}

    call.loaded = loaded  # keeps the trackable objects alive with the function
    return call


def references(repository):
    """{model: callable({input key: array}) -> {output key: numpy array}} for GOOD_MODELS."""
    repository = Path(repository)
    return {model: load_signature(repository / model / sub, signature)
            for model, (sub, signature) in _REFERENCE_SOURCES.items()}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Writes the TensorFlow test models.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for name, folder in generate(args.out).items():
        print(name, folder)


# --- classify and regress signatures (TensorFlow Serving's Classify and Regress) --------------

EXAMPLE_WEIGHTS = ((1.0, -1.0), (2.0, 0.5))  # x[2] @ W -> two logits
EXAMPLE_LABELS = (b"low", b"high")


def write_examples_model(folder):
    """A graph-mode SavedModel taking serialized tf.Examples (feature x: float[2]), in
    TensorFlow Serving's layout (<folder>/1), with two signatures:
      serving_default  method tensorflow/serving/classify: inputs [-1] string ->
                       classes [-1, 2] string (EXAMPLE_LABELS), scores = softmax(x @ W)
      regress          method tensorflow/serving/regress: inputs -> outputs [-1] = sum(x)
    Built with tf.compat.v1's SavedModelBuilder, as Estimator exports were."""
    tf = _tf()
    tf.get_logger().setLevel("ERROR")  # the v1 builder's deprecation notices
    tf1 = tf.compat.v1
    path = Path(folder) / "1"
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        serialized = tf1.placeholder(tf.string, [None], name="tf_example")
        x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([2], tf.float32)})["x"]
        scores = tf.nn.softmax(tf.matmul(x, tf.constant(EXAMPLE_WEIGHTS, tf.float32)))
        classes = tf.tile(tf.constant([list(EXAMPLE_LABELS)]), [tf.shape(x)[0], 1])
        value = tf.reduce_sum(x, axis=1)
        with tf1.Session(graph=graph) as session:
            builder = tf1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": tf1.saved_model.classification_signature_def(
                    serialized, classes, scores),
                "regress": tf1.saved_model.regression_signature_def(serialized, value),
            })
            builder.save()


def example_bytes(x, extra=None):
    """A serialized tf.Example with feature x (floats; None: no x) and, optionally, more float
    features."""
    tf = _tf()
    features = {}
    for name, values in ({} if x is None else {"x": x}).items():
        features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))
    for name, values in (extra or {}).items():
        features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def expected_examples(xs):
    """(labels, scores, values) write_examples_model answers for rows xs [n, 2]."""
    xs = np.asarray(xs, np.float32)
    logits = xs @ np.asarray(EXAMPLE_WEIGHTS, np.float32)
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    return [list(EXAMPLE_LABELS)] * len(xs), scores, xs.sum(axis=1)


# --- online learning: a SavedModel with a `train` signature -----------------------------------

REGRESSION_W = 0.5  # the starting weights of write_trainable_regression
REGRESSION_B = 0.0
REGRESSION_LEARNING_RATE = 0.1


def write_trainable_regression(savedmodel_dir):
    """y = x W + b (W = 0.5, b = 0 as tf.Variables), x FP32 [-1, 1], written with
    tf.saved_model.save into `savedmodel_dir` with two signatures:
      serving_default  x -> {"y"}
      train            train(x, y) -> {"loss"}: the mean squared error of the prediction, after
                       which one SGD step (REGRESSION_LEARNING_RATE) is applied to W and b with
                       tf.GradientTape and assign_sub."""
    tf = _tf()
    x_spec = tf.TensorSpec([None, 1], tf.float32, name="x")
    y_spec = tf.TensorSpec([None, 1], tf.float32, name="y")

    class Regression(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[REGRESSION_W]], dtype=tf.float32, name="w")
            self.b = tf.Variable([REGRESSION_B], dtype=tf.float32, name="b")

        @tf.function(input_signature=[x_spec])
        def serve(self, x):
            return {"y": tf.matmul(x, self.w) + self.b}

        @tf.function(input_signature=[x_spec, y_spec])
        def train(self, x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.matmul(x, self.w) + self.b - y))
            dw, db = tape.gradient(loss, [self.w, self.b])
            self.w.assign_sub(REGRESSION_LEARNING_RATE * dw)
            self.b.assign_sub(REGRESSION_LEARNING_RATE * db)
            return {"loss": loss}

    module = Regression()
    _save_module(module, savedmodel_dir,
                 {"serving_default": module.serve, "train": module.train})


def trainable_regression_config(parameters=None, *, training=True, max_batch_size=64):
    """config.pbtxt text for write_trainable_regression's SavedModel: x and y FP32 [1], training
    on (unless `training` is false) without timed checkpoints, plus `parameters` ({key: value})."""
    settings = {"checkpoint_every_seconds": "0"}
    if training:
        settings["training"] = "true"
    settings.update(parameters or {})
    return (f'platform: "{PLATFORM}"\n'
            f"max_batch_size: {max_batch_size}\n"
            'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
            'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
            "dynamic_batching { }\n"
            + "".join(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n'
                      for key, value in settings.items()))
