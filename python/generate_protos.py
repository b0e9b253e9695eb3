#!/usr/bin/env python3
"""Generates the protobuf messages of the modeld Python package from proto/kserve,
proto/modeld/training.proto, proto/modeld/redis.proto and TensorFlow Serving's model status
(proto/tensorflow_serving/get_model_status.proto, with the two files it imports).

The messages are registered under other proto packages and file names than the sources
declare: `inference` (kserve/*.proto) becomes `modeld.kserve`, `modeld.training`
(modeld/training.proto) becomes `modeld.kserve_training`, `modeld.redis`
(modeld/redis.proto) becomes `modeld.kserve_redis`, `tensorflow.serving` becomes
`modeld.tfserving` and `tensorflow.error` `modeld.tferror`, every file
`modeld/_proto/<name>.proto`. Field numbers are the wire contract; package names are not,
except in gRPC method paths, which the client spells out itself
(`/inference.GRPCInferenceService/...`, `/modeld.training.Training/Train`,
`/tensorflow.serving.ModelService/GetModelStatus`). So the package can be imported beside
tritonclient (which registers `inference.*` in the same protobuf descriptor pool), beside
tensorflow-serving-api (`tensorflow.serving.*`) and beside stubs generated from the same files
as they are (the integration tests load build/python/modeld/redis_pb2.py, `modeld.redis`)
without a duplicate-symbol error.

Usage: generate_protos.py [--out python/src] [--proto-root proto]
(run with a Python that has grpcio-tools). `make build` runs it for the editable install of
the venv; python/setup.py imports it to build the package (`pip install ./python`, `pip wheel
./python`), writing the messages into the build's output. The .proto sources are the
checkout's proto/, or, in an sdist, the copy that python/setup.py puts at its top (proto/).
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: source under proto/ -> the name it gets under TARGET
SOURCES = {
    "kserve/grpc_service.proto": "grpc_service.proto",
    "kserve/model_config.proto": "model_config.proto",
    "modeld/training.proto": "training.proto",
    "modeld/redis.proto": "redis.proto",
    # The model status of TensorFlow Serving's ModelService, which modeld serves in every
    # --model-control-mode (modeld.Client.model_status).
    "tensorflow/error_codes.proto": "tf_error_codes.proto",
    "tensorflow_serving/model.proto": "tf_model.proto",
    "tensorflow_serving/get_model_status.proto": "tf_model_status.proto",
}
TARGET = "modeld/_proto"


def rewrite(text: str) -> str:
    text = re.sub(r"^package inference;", "package modeld.kserve;", text, flags=re.M)
    text = re.sub(r"^package modeld\.redis;", "package modeld.kserve_redis;", text, flags=re.M)
    text = re.sub(r"^package tensorflow\.serving;", "package modeld.tfserving;", text, flags=re.M)
    text = re.sub(r"^package tensorflow\.error;", "package modeld.tferror;", text, flags=re.M)
    text = re.sub(r"(?<![\w.])tensorflow\.error\.(?=[A-Z])", "modeld.tferror.", text)
    text = re.sub(r'^import "tensorflow/error_codes\.proto";',
                  f'import "{TARGET}/tf_error_codes.proto";', text, flags=re.M)
    text = re.sub(r'^import "tensorflow_serving/model\.proto";',
                  f'import "{TARGET}/tf_model.proto";', text, flags=re.M)
    text = re.sub(
        r"^package modeld\.training;", "package modeld.kserve_training;", text, flags=re.M
    )
    # redis.proto and training.proto name the messages of other files by their full name,
    # inference.X and modeld.training.X.
    text = re.sub(r"(?<![\w.])inference\.(?=[A-Z])", "modeld.kserve.", text)
    text = re.sub(r"(?<![\w.])modeld\.training\.(?=[A-Z])", "modeld.kserve_training.", text)
    text = re.sub(r'^import "kserve/', f'import "{TARGET}/', text, flags=re.M)
    return re.sub(r'^import "modeld/training\.proto";', f'import "{TARGET}/training.proto";',
                  text, flags=re.M)


def proto_root() -> Path:
    """The folder holding the .proto sources: an sdist's own copy, else the checkout's."""
    for root in (HERE / "proto", HERE.parent / "proto"):
        if all((root / source).is_file() for source in SOURCES):
            return root
    raise FileNotFoundError(
        f"neither {HERE / 'proto'} nor {HERE.parent / 'proto'} holds {', '.join(SOURCES)}"
    )


def generated_files(out: Path) -> list[Path]:
    """Every file generate(out) writes."""
    names = ["__init__.py"]
    for name in SOURCES.values():
        stem = name.removesuffix(".proto")
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi"]
    return [Path(out) / TARGET / name for name in names]


def generate(out: Path, root: Path | None = None) -> list[Path]:
    """Writes the package modeld._proto under `out` (replacing what is there); returns the
    files written. Raises RuntimeError when protoc fails."""
    from grpc_tools import protoc  # only the build needs grpcio-tools, never the package

    out = Path(out)
    root = proto_root() if root is None else Path(root)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / TARGET
        staged.mkdir(parents=True)
        for source, name in SOURCES.items():
            (staged / name).write_text(rewrite((root / source).read_text()))
        generated = out / TARGET
        if generated.exists():
            shutil.rmtree(generated)
        generated.mkdir(parents=True)
        include = Path(protoc.__file__).parent / "_proto"
        code = protoc.main(
            ["protoc", f"-I{tmp}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
            + [f"{TARGET}/{name}" for name in SOURCES.values()]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed (exit status {code}) on {root}")
        (generated / "__init__.py").write_text(
            '"""Generated by python/generate_protos.py from proto/kserve, proto/modeld and '
            'TensorFlow Serving\'s model status; do not edit."""\n'
        )
    files = generated_files(out)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise RuntimeError(f"protoc did not write {missing}")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "src"))
    parser.add_argument("--proto-root", default=None,
                        help="the folder with kserve/, modeld/, tensorflow/ and "
                             "tensorflow_serving/ (default: the checkout's proto/)")
    args = parser.parse_args()
    try:
        generate(Path(args.out), args.proto_root)
    except (OSError, RuntimeError) as error:
        print(f"generate_protos.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
