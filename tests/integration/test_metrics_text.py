"""/metrics is valid Prometheus text, and docs/metrics.md documents all of it: each family is
declared once (HELP and TYPE), every sample belongs to a declared family, and every family
appears in the table of docs/metrics.md."""

import re
import urllib.request
from pathlib import Path

import numpy as np

from infer_helpers import make_request, make_stub

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? \S+$")
SUFFIXES = ("_bucket", "_sum", "_count")


def test_every_family_is_declared_once_and_documented(launch, example_repository):
    server = launch(example_repository)
    x = np.ones((1, 2), np.float32)
    make_stub(server.channel()).ModelInfer(make_request("identity_fp32", [("INPUT0", x)]),
                                           timeout=30)
    text = urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10).read()
    helps, types, samples = [], [], set()
    for line in text.decode().splitlines():
        if line.startswith("# HELP "):
            helps.append(line.split()[2])
        elif line.startswith("# TYPE "):
            types.append(line.split()[2])
        elif line:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            samples.add(match.group(1))
    duplicated = sorted({name for name in types if types.count(name) > 1})
    assert not duplicated, f"families declared more than once: {duplicated}"
    assert sorted(helps) == sorted(types)
    for sample in samples:
        family = next((sample[: -len(s)] for s in SUFFIXES
                       if sample.endswith(s) and sample[: -len(s)] in types), sample)
        assert family in types, f"sample {sample} of no declared family"
    documented = set(re.findall(r"^\| `(modeld_[a-z0-9_]+)`", DOC.read_text(), re.M))
    missing = sorted(set(types) - documented)
    assert not missing, f"not in docs/metrics.md: {missing}"
