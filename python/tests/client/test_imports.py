"""What importing and using modeld loads, checked in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def python(code, timeout=60):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "tensorflow", "keras", "jax")


def test_import_is_light():
    loaded = python("""
        import json, sys
        import modeld
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    for name in HEAVY + ("grpc", "asyncio", "django", "redis"):
        assert name not in loaded, name


def test_calls_load_neither_torch_nor_tensorflow(server):
    loaded = python(f"""
        import asyncio, json, sys
        import modeld, modeld.aio
        for url in ("grpc://{server.address}", "http://{server.http_address}"):
            with modeld.Client(url) as client:
                assert client.predict("linear", [[1, 2, 3]]).shape == (1, 1)
            async def main():
                async with modeld.aio.Client(url) as client:
                    return await client.predict("linear", [[1, 2, 3]])
            assert asyncio.run(main()).shape == (1, 1)
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
    """)
    for name in HEAVY:
        assert name not in loaded, name
    assert "grpc" in loaded  # the check above can see what was loaded


def test_http_client_does_not_load_grpc(server):
    loaded = python(f"""
        import json, sys
        import modeld
        with modeld.Client("http://{server.http_address}") as client:
            assert client.predict("linear", [[1, 2, 3]]).shape == (1, 1)
        print(json.dumps(sorted(sys.modules)))
    """)
    assert "grpc" not in loaded and "google.protobuf" not in loaded
    assert "modeld._http" in loaded


def test_coexists_with_tritonclient(server):
    for first, second in (("tritonclient.grpc", "modeld"), ("modeld", "tritonclient.grpc")):
        result = python(f"""
            import json
            import {first}
            import {second}
            import numpy as np
            import modeld, tritonclient.grpc as tc
            client = modeld.Client("grpc://{server.address}")
            y = client.predict("linear", [[1, 2, 3]])
            triton = tc.InferenceServerClient("{server.address}")
            x = tc.InferInput("x", [1, 3], "FP32")
            x.set_data_from_numpy(np.array([[1, 2, 3]], np.float32))
            z = triton.infer("linear", [x]).as_numpy("y")
            print(json.dumps([y.tolist(), z.tolist(), triton.is_server_live()]))
        """)
        assert result == [[[9.5]], [[9.5]], True]
