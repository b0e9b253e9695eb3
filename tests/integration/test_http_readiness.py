"""Readiness while models load: the server listens at once, /v2/health/ready is 503 until
every model has loaded or failed, then 200; a failed model does not hold readiness back."""

from http_helpers import HttpClient
from modeld_server import ServerProcess, require_build

SLOW_CONFIG = """\
backend: "fake"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
parameters { key: "load_sleep_ms" value { string_value: "2000" } }
"""


def test_ready_is_false_while_a_model_loads(tmp_path):
    require_build()
    repository = tmp_path / "repo"
    (repository / "slow" / "1").mkdir(parents=True)
    (repository / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    (repository / "broken").mkdir()
    (repository / "broken" / "config.pbtxt").write_text("not_a_field: 1\n")
    server = ServerProcess(repository, ())
    try:
        server.wait_until_listening()
        client = HttpClient(server.http_address)
        assert client.get("/v2/health/live").status == 200
        # The slow model takes 2 s to load and the port opened before loading began.
        assert client.get("/v2/health/ready").status == 503
        assert client.get("/v2/models/slow/ready").status != 200
        server.wait_until_ready()
        assert client.get("/v2/health/ready").status == 200
        assert client.get("/v2/models/slow/ready").status == 200
        assert client.get("/v2/models/broken/ready").status != 200  # reported per model
        states = client.get("/metrics").body.decode()
        assert 'modeld_model_state{model="slow",version="1",state="ready"} 1' in states
        assert 'modeld_model_state{model="broken",version="",state="failed"} 1' in states
        client.close()
    finally:
        assert server.stop() == 0, server.log
