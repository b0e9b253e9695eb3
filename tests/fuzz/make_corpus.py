#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/seed-*.

Each seed is a small valid input of the kind a client sends, so libFuzzer starts from the
decoders' success paths (and the configs of tests/fuzz/fuzz_support.cc, whose input names the
seeds use) instead of having to discover the wire format. The seeds are checked in; run this
again (with the venv's Python: it needs protobuf and grpcio-tools) after changing a message or
a seed. Files named regress-* in the same folders are inputs that once broke a decoder; this
script leaves them alone.

Usage: .venv/bin/python tests/fuzz/make_corpus.py
"""

import base64
import json
import struct
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
PROTOS = ["kserve/grpc_service.proto", "modeld/redis.proto", "tensorflow_serving/predict.proto",
          "tensorflow_serving/classification.proto"]


def message_classes():
    """{full name: class} for modeld's own .proto files, with no generated Python modules (so
    proto/tensorflow never meets the venv's tensorflow package)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = ["protoc", f"-I{ROOT / 'proto'}", f"--descriptor_set_out={out}",
                "--include_imports", *PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    names = ["inference.ModelInferRequest", "modeld.redis.RequestEnvelope",
             "modeld.training.TrainRequest",
             "tensorflow.serving.PredictRequest", "tensorflow.serving.ClassificationRequest",
             "tensorflow.TensorProto"]
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
            for name in names}


M = message_classes()
DT = {"DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 5,
      "DT_INT8": 6, "DT_STRING": 7, "DT_INT64": 9, "DT_BOOL": 10, "DT_UINT16": 17,
      "DT_HALF": 19, "DT_UINT32": 22, "DT_UINT64": 23}


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


# --- KServe V2 gRPC (also the Redis envelopes' payload) -----------------------------------

def kserve_input(request, name, datatype, shape, raw=None, **contents):
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return tensor


def kserve_requests():
    requests = {}
    r = M["inference.ModelInferRequest"](model_name="linear", id="raw")
    kserve_input(r, "x", "FP32", [2, 3], raw=f32(1, 2, 3, 4, 5, 6))
    r.outputs.add(name="y")
    requests["linear-raw"] = r

    r = M["inference.ModelInferRequest"](model_name="linear", model_version="2")
    kserve_input(r, "x", "FP32", [1, 3], fp32_contents=[1.0, -2.5, 3.0])
    r.parameters["priority"].uint64_param = 1
    r.parameters["timeout"].int64_param = 5000
    requests["linear-typed-params"] = r

    r = M["inference.ModelInferRequest"](model_name="identity")
    kserve_input(r, "x", "FP32", [2, 2], raw=f32(0, 1, 2, 3))
    requests["identity-raw"] = r

    r = M["inference.ModelInferRequest"](model_name="int64_bool")
    kserve_input(r, "ids", "INT64", [1, 3], int64_contents=[1, -2, 3])
    kserve_input(r, "mask", "BOOL", [1, 3], bool_contents=[True, False, True])
    requests["int64-bool-typed"] = r

    r = M["inference.ModelInferRequest"](model_name="strings")
    kserve_input(r, "text", "BYTES", [2, 1], bytes_contents=[b"hello", "wörld".encode()])
    requests["strings-typed"] = r

    r = M["inference.ModelInferRequest"](model_name="strings")
    element = b"".join(struct.pack("<I", len(s)) + s for s in [b"a", b""])
    kserve_input(r, "text", "BYTES", [2, 1], raw=element)
    requests["strings-raw"] = r

    r = M["inference.ModelInferRequest"](model_name="narrow")
    kserve_input(r, "i8", "INT8", [1, 2], int_contents=[-128, 127])
    kserve_input(r, "u16", "UINT16", [1, 2], uint_contents=[0, 65535])
    kserve_input(r, "d", "FP64", [1, 2], fp64_contents=[0.5, -1e300])
    requests["narrow-typed"] = r

    r = M["inference.ModelInferRequest"](model_name="narrow")
    kserve_input(r, "i8", "INT8", [1, 2], raw=b"\x01\xff")
    kserve_input(r, "u16", "UINT16", [1, 2], raw=b"\x01\x00\xff\xff")
    kserve_input(r, "h", "FP16", [1, 2], raw=b"\x00\x3c\x00\xc0")
    kserve_input(r, "d", "FP64", [1, 2], raw=struct.pack("<2d", 1.0, 2.0))
    requests["narrow-raw"] = r
    return requests


def train_requests():
    """Training steps (modeld.training.TrainRequest): inputs as for inference, then targets;
    raw_input_contents holds the inputs' entries and then the targets'."""
    requests = {}
    r = M["modeld.training.TrainRequest"](model_name="linear", id="step-1")
    kserve_input(r, "x", "FP32", [2, 3], raw=f32(1, 2, 3, 4, 5, 6))
    r.targets.add(name="y", datatype="FP32", shape=[2, 1])
    r.raw_input_contents.append(f32(0.5, -0.5))
    requests["linear-raw"] = r

    r = M["modeld.training.TrainRequest"](model_name="int64_bool", model_version="1")
    kserve_input(r, "ids", "INT64", [1, 3], int64_contents=[1, -2, 3])
    kserve_input(r, "mask", "BOOL", [1, 3], bool_contents=[True, False, True])
    r.targets.add(name="y", datatype="INT64", shape=[1, 3]).contents.int64_contents.extend(
        [0, 1, 0])
    requests["int64-bool-typed"] = r

    r = M["modeld.training.TrainRequest"](model_name="strings")
    kserve_input(r, "text", "BYTES", [2, 1], bytes_contents=[b"hello", "wörld".encode()])
    r.targets.add(name="n", datatype="INT32", shape=[2]).contents.int_contents.extend([5, 5])
    requests["strings-typed"] = r
    return requests


def train_fuzz_inputs():
    """train_fuzz's layout: 'h' and an HTTP body as kserve_json_fuzz's, or 'g' and a
    serialized TrainRequest."""
    inputs = {f"grpc-{name}": b"g" + r.SerializeToString(deterministic=True)
              for name, r in train_requests().items()}
    x = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}
    inputs["http-linear-nested"] = b"h\n" + json.dumps({
        "id": "s1", "inputs": [x],
        "targets": [{"name": "y", "shape": [2, 1], "datatype": "FP32", "data": [[1], [2]]}]}).encode()
    inputs["http-int64-bool"] = b"h\n" + json.dumps({
        "inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [[1, -1]]},
                   {"name": "mask", "shape": [1, 2], "datatype": "BOOL", "data": [[True, False]]}],
        "targets": [{"name": "y", "shape": [1, 2], "datatype": "INT64", "data": [0, 1]}]}).encode()
    header = json.dumps({
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                    "parameters": {"binary_data_size": 24}}],
        "targets": [{"name": "y", "shape": [2, 1], "datatype": "FP32",
                     "parameters": {"binary_data_size": 8}}]}).encode()
    inputs["http-linear-binary"] = (b"h" + str(len(header)).encode() + b"\n" + header +
                                    f32(1, 2, 3, 4, 5, 6) + f32(0.5, -0.5))
    return inputs


# --- TensorFlow Serving gRPC ---------------------------------------------------------------

def tensor_proto(dtype, shape, **fields):
    proto = M["tensorflow.TensorProto"](dtype=DT[dtype])
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    for field, values in fields.items():
        if field == "tensor_content":
            proto.tensor_content = values
        else:
            getattr(proto, field).extend(values)
    return proto


def predict_requests():
    cases = {
        "linear-content": ("linear", {"x": tensor_proto("DT_FLOAT", [2, 3],
                                                        tensor_content=f32(1, 2, 3, 4, 5, 6))}),
        "linear-float-val": ("linear", {"x": tensor_proto("DT_FLOAT", [1, 3],
                                                          float_val=[1, 2, 3])}),
        "linear-broadcast": ("linear", {"x": tensor_proto("DT_FLOAT", [4, 3], float_val=[7])}),
        "strings": ("strings", {"text": tensor_proto("DT_STRING", [2],
                                                     string_val=[b"a", b"bc"])}),
        "int64-bool": ("int64_bool", {
            "ids": tensor_proto("DT_INT64", [1, 2], int64_val=[5, -5]),
            "mask": tensor_proto("DT_BOOL", [1, 2], bool_val=[True, False])}),
        "narrow": ("narrow", {
            "i8": tensor_proto("DT_INT8", [1, 2], int_val=[-3, 3]),
            "u16": tensor_proto("DT_UINT16", [1, 2], int_val=[1, 65535]),
            "h": tensor_proto("DT_HALF", [1, 2], half_val=[0x3C00, 0xC000]),
            "d": tensor_proto("DT_DOUBLE", [1, 2], double_val=[1.5, 2.5])}),
        "wide": ("identity", {
            "x": tensor_proto("DT_UINT32", [2], uint32_val=[1, 2]),
            "y": tensor_proto("DT_UINT64", [1], uint64_val=[3]),
            "z": tensor_proto("DT_INT32", [1, 1], int_val=[4]),
            "w": tensor_proto("DT_UINT8", [2], int_val=[0, 255])}),
    }
    requests = {}
    for name, (model, inputs) in cases.items():
        r = M["tensorflow.serving.PredictRequest"]()
        r.model_spec.name = model
        r.model_spec.signature_name = "serving_default"
        for key, proto in inputs.items():
            r.inputs[key].CopyFrom(proto)
        requests[name] = r
    requests["linear-content"].output_filter.append("y")
    return requests


def example(**floats):
    """A serialized tf.Example with float features (opaque to modeld, read by the model)."""
    features = b""
    for key, values in floats.items():
        float_list = b"\x0a" + bytes([4 * len(values)]) + f32(*values)
        feature = b"\x12" + bytes([len(float_list)]) + float_list
        entry = (b"\x0a" + bytes([len(key)]) + key.encode()
                 + b"\x12" + bytes([len(feature)]) + feature)
        features += b"\x0a" + bytes([len(entry)]) + entry
    return b"\x0a" + bytes([len(features)]) + features


def classification_requests():
    plain = M["tensorflow.serving.ClassificationRequest"]()
    plain.model_spec.name = "classify"
    plain.input.example_list.examples.extend([example(x=[0.5, 1.0]), example(x=[2.0, -1.0])])
    context = M["tensorflow.serving.ClassificationRequest"]()
    context.model_spec.name = "classify"
    context.input.example_list_with_context.context = example(c=[1.0])
    context.input.example_list_with_context.examples.extend([example(x=[1.0, 1.0])])
    return {"example-list": plain, "with-context": context}


def envelopes():
    result = {}
    for name, request in list(kserve_requests().items())[:4]:
        e = M["modeld.redis.RequestEnvelope"](request_id=f"id-{name}", reply_key=f"reply:{name}",
                                               deadline_unix_ms=4102444800000)
        e.infer.CopyFrom(request)
        result[f"infer-{name}"] = e
    for name, request in train_requests().items():
        e = M["modeld.redis.RequestEnvelope"](request_id=f"train-{name}",
                                               reply_key=f"reply:train-{name}")
        e.train.CopyFrom(request)
        result[f"train-{name}"] = e
    e = M["modeld.redis.RequestEnvelope"](request_id="meta", reply_key="reply:meta")
    e.metadata.name = "linear"
    result["metadata"] = e
    e = M["modeld.redis.RequestEnvelope"](request_id="none", reply_key="reply:none")
    result["no-payload"] = e
    return result


# --- HTTP bodies ----------------------------------------------------------------------------

def kserve_json_bodies():
    def plain(body):
        return b"\n" + json.dumps(body).encode()

    def binary(header, *chunks):
        text = json.dumps(header).encode()
        return str(len(text)).encode() + b"\n" + text + b"".join(chunks)

    linear = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                          "data": [[1, 2, 3], [4, 5, 6]]}]}
    bodies = {
        "linear-nested": plain(linear),
        "linear-flat-outputs": plain({
            "id": "7", "parameters": {"binary_data_output": True, "priority": 1, "timeout": 100},
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2.5, -3]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}),
        "int64-bool": plain({"inputs": [
            {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [[1, -1]]},
            {"name": "mask", "shape": [1, 2], "datatype": "BOOL", "data": [[True, False]]}]}),
        "strings": plain({"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES",
                                      "data": ["hello", "wörld"]}]}),
        "linear-binary": binary(
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                         "parameters": {"binary_data_size": 24}}],
             "outputs": [{"name": "y", "parameters": {"binary_data": True}}]},
            f32(1, 2, 3, 4, 5, 6)),
        "narrow-binary": binary(
            {"inputs": [
                {"name": "i8", "shape": [1, 2], "datatype": "INT8", "data": [-1, 1]},
                {"name": "u16", "shape": [1, 2], "datatype": "UINT16",
                 "parameters": {"binary_data_size": 4}},
                {"name": "h", "shape": [1, 2], "datatype": "FP16",
                 "parameters": {"binary_data_size": 4}},
                {"name": "d", "shape": [1, 2], "datatype": "FP64", "data": [1e-3, 1e3]}]},
            b"\x01\x00\xff\xff", b"\x00\x3c\x00\xc0"),
        "strings-binary": binary(
            {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES",
                         "parameters": {"binary_data_size": 7}}]},
            struct.pack("<I", 3) + b"abc"),
    }
    return bodies


def tfserving_json_bodies():
    b64 = base64.b64encode(b"\x00\xffbytes").decode()
    bodies = {
        "linear-instances": {"instances": [[1, 2, 3], [4, 5, 6]]},
        "linear-inputs": {"signature_name": "serving_default", "inputs": [[1.5, "NaN", 3]]},
        "int64-bool-rows": {"instances": [{"ids": [1, 2], "mask": [True, False]}]},
        "int64-bool-columns": {"inputs": {"ids": [[1, 2]], "mask": [[False, True]]}},
        "strings": {"instances": ["hello", {"b64": b64}]},
        "narrow": {"inputs": {"i8": [[-1, 1]], "u16": [[0, 65535]], "h": [[0.5, -2]],
                              "d": [[1e-300, 1e300]]}},
        "identity": {"inputs": [[1, 2], [3, 4]]},
    }
    result = {name: json.dumps(body).encode() for name, body in bodies.items()}
    # Python's json writes NaN bare; TensorFlow Serving's clients do too.
    result["linear-nan"] = b'{"instances": [[NaN, Infinity, -Infinity]]}'
    return result


# --- config.pbtxt ---------------------------------------------------------------------------

CONFIGS = {
    "linear": """name: "linear"
platform: "pytorch_libtorch"
max_batch_size: 64
input [ { name: "x" data_type: TYPE_FP32 dims: [3] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [1] } ]
version_policy: { all: {} }
""",
    "batching": """platform: "pytorch_libtorch"
max_batch_size: 64
version_policy: { latest { num_versions: 2 } }
input [ { name: "x", data_type: TYPE_FP32, dims: [ 3 ], format: FORMAT_NONE } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 1 ] } ]
instance_group [ { count: 2, kind: KIND_CPU } ]
default_model_filename: "model.pt"
parameters { key: "intra_op_thread_count" value { string_value: "1" } }
dynamic_batching {
  max_queue_delay_microseconds: 100
  preferred_batch_size: [ 16, 32 ]
  preserve_ordering: true
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy {
    max_queue_size: 256
    default_timeout_microseconds: 0
    allow_timeout_override: true
  }
}
""",
    "tensorflow": """platform: "tensorflow_savedmodel"
max_batch_size: 8
version_policy: { specific { versions: [ 1, 3 ] } }
input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]
output [ { name: "n" data_type: TYPE_INT32 dims: [ 1 ] reshape: { shape: [ ] } } ]
parameters { key: "signature_name" value { string_value: "serving_default" } }
""",
    "warmup": """backend: "pytorch"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ -1 ] } ]
model_warmup { name: "zeros" batch_size: 2
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 5 ] zero_data: true } } }
model_warmup { name: "random" batch_size: 1
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 5 ] random_data: true } } }
""",
}


# --- Celery task messages as kombu's Redis transport pushes them (docs/design/celery.md) --
def celery_messages():
    def wrap(task, args, kwargs, embed=None, content_type="application/json", **headers):
        body = json.dumps([args, kwargs, embed]).encode()
        task_id = "6f1c-seed"
        return json.dumps({
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                        "parent_id": None, "group": None, "retries": 0,
                        "timelimit": [None, None], "argsrepr": repr(args),
                        "kwargsrepr": repr(kwargs), "origin": "gen1@web", **headers},
            "properties": {"correlation_id": task_id, "reply_to": "9a0e-reply",
                           "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": "modeld"},
                           "priority": 0, "body_encoding": "base64", "delivery_tag": "d1"},
        }).encode()

    chain = [{"task": "site.postprocess", "args": [], "kwargs": {}, "options": {},
              "subtask_type": None, "immutable": False}]
    return {
        "infer-linear": wrap("modeld.infer", ["linear", {"x": [[1.0, 2.0, 3.0]]}], {}),
        "infer-int64-bool-kwargs": wrap(
            "modeld.infer", [], {"model": "int64_bool", "inputs": {"ids": [[1, 2]],
                                                                   "mask": [[True, False]]},
                                 "version": 1, "outputs": ["y"]}),
        "infer-strings-headers": wrap(
            "modeld.infer", ["strings", {"text": [["hello"], ["b"]]}], {},
            eta="2024-05-01T12:00:00.250000+00:00", expires="2024-05-01T13:00:00+00:00",
            timelimit=[10, 30], ignore_result=True),
        "predict-linear-chain": wrap("modeld.predict", ["linear", [[1, 2, 3]]], {},
                                     {"callbacks": None, "errbacks": None, "chain": chain,
                                      "chord": None}),
        "predict-narrow": wrap("modeld.predict", ["narrow", [[1, 2]]], {"version": "1"}),
        "train-linear": wrap("modeld.train", ["linear", {"x": [[1, 2, 3]]}, {"y": [[1]]}], {}),
        "unknown-task": wrap("proj.tasks.add", [2, 2], {}),
        "pickle": wrap("modeld.infer", [], {}, content_type="application/x-python-serialize"),
    }


def write(target, seeds):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    for name, seed in seeds.items():
        data = seed if isinstance(seed, bytes) else seed.SerializeToString(deterministic=True)
        (folder / f"seed-{name}").write_bytes(data)
    print(f"{target}: {len(seeds)} seeds")


def main():
    write("kserve_grpc_fuzz", kserve_requests())
    write("redis_envelope_fuzz", envelopes())
    write("tfserving_predict_fuzz", predict_requests())
    write("tfserving_examples_fuzz", classification_requests())
    write("kserve_json_fuzz", kserve_json_bodies())
    write("tfserving_json_fuzz", tfserving_json_bodies())
    write("train_fuzz", train_fuzz_inputs())
    write("celery_task_fuzz", celery_messages())
    write("model_config_fuzz", {name: text.encode() for name, text in CONFIGS.items()})


if __name__ == "__main__":
    main()
