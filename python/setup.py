"""The build hook of the modeld package: its protobuf messages (modeld._proto) are generated
from the .proto files with grpcio-tools while the package is built, so a checkout needs no
`make build` first for `pip install ./python`, `pip wheel ./python` or `python -m build`.

- build_py writes the messages into the build's output (build_lib), never into the source
  tree; src/modeld/_proto, which `make build` generates for the venv, is not packaged
  (pyproject.toml leaves it out), so a wheel never carries stale messages.
- An editable install (`pip install -e ./python`) imports src/ itself: there build_py
  generates into src/modeld/_proto, unless that is newer than every source already.
- sdist copies the .proto sources it needs into the sdist's proto/, where
  generate_protos.py finds them when the sdist is built into a wheel.

Everything else (name, dependencies, extras) is in pyproject.toml.
"""

import importlib.util
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def _generator():
    """python/generate_protos.py as a module (the build does not put HERE on sys.path)."""
    spec = importlib.util.spec_from_file_location("_modeld_generate_protos",
                                                  HERE / "generate_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version_tuple(text):
    return tuple(int(part) for part in text.split("."))


class BuildPyWithProtos(build_py):
    """build_py, then modeld._proto generated from the .proto files."""

    def initialize_options(self):
        super().initialize_options()
        self._generated = []

    def run(self):
        super().run()
        generator = _generator()
        if getattr(self, "editable_mode", False):
            out = HERE / "src"
            if self._up_to_date(generator, out):
                return
        else:
            out = Path(self.build_lib)
        self.announce(f"generating modeld._proto in {out}", level=2)
        self._generated = [str(path) for path in generator.generate(out)]
        self._check_gencode(Path(self._generated[0]).parent)

    @staticmethod
    def _up_to_date(generator, out):
        files = generator.generated_files(out)
        if not all(path.is_file() for path in files):
            return False
        root = generator.proto_root()
        sources = [root / source for source in generator.SOURCES]
        newest = max(path.stat().st_mtime for path in [*sources, HERE / "generate_protos.py"])
        return min(path.stat().st_mtime for path in files) >= newest

    def _check_gencode(self, package):
        """Fails the build when the generated code needs a newer protobuf runtime than the
        package declares: gencode X.Y.Z refuses to load under a runtime older than X.Y.Z
        (google.protobuf.runtime_version). pyproject.toml's bound on grpcio-tools keeps an
        isolated build below it; this catches a build without isolation (`pip install
        --no-build-isolation`) in an environment with a newer grpcio-tools."""
        declared = None
        for requirement in self.distribution.install_requires or []:
            match = re.fullmatch(r"\s*protobuf\s*>=\s*([\d.]+)\s*(,.*)?", str(requirement))
            if match:
                declared = _version_tuple(match.group(1))
        if declared is None:
            return
        for path in sorted(package.glob("*_pb2.py")):
            match = re.search(r"^# Protobuf Python Version: ([\d.]+)$", path.read_text(),
                              flags=re.M)
            if match and _version_tuple(match.group(1)) > declared:
                raise RuntimeError(
                    f"{path.name} was generated for protobuf {match.group(1)}, newer than the "
                    f"runtime the package declares (protobuf>={'.'.join(map(str, declared))}); "
                    "build with the grpcio-tools that pyproject.toml's [build-system] names"
                )

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [path for path in self._generated if path not in outputs]


class SdistWithProtos(sdist):
    """sdist, plus the .proto sources the messages are generated from (they live outside
    python/, in the checkout's proto/), at the sdist's proto/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        generator = _generator()
        root = generator.proto_root()
        for source in generator.SOURCES:
            target = Path(base_dir, "proto", source)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / source, target)


setup(cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos})
