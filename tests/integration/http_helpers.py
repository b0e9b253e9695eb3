"""Plain-HTTP helpers for the end-to-end tests of modeld's REST APIs (KServe V2, TF Serving).

Uses only the standard library (http.client on a persistent connection), so the tests see
exactly what goes over the wire, keep-alive included. Safe to import next to tritonclient.
"""

import http.client
import json
import re
import struct
import urllib.request

import numpy as np

TIMEOUT_S = 30.0

# The example models' weights (examples/generate_models.py): y = x @ W + b.
LINEAR_WEIGHTS = {
    1: (np.array([[0.5], [-1.25], [2.0]], np.float32), np.array([0.75], np.float32)),
    2: (np.array([[1.0], [-2.5], [4.0]], np.float32), np.array([1.5], np.float32)),
}


def linear_expected(x, version=2):
    weights, bias = LINEAR_WEIGHTS[version]
    return (np.asarray(x, np.float32) @ weights + bias).astype(np.float32)


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error(self):
        parsed = self.json()
        assert isinstance(parsed, dict) and isinstance(parsed.get("error"), str), self.body
        return parsed["error"]


class HttpClient:
    """One keep-alive connection to modeld's HTTP port."""

    def __init__(self, address, timeout=TIMEOUT_S):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body, headers)

    def local_port(self):
        """The client side port of the open connection; None when it is closed."""
        return self.conn.sock.getsockname()[1] if self.conn.sock is not None else None

    def close(self):
        self.conn.close()


def expect_error(reply, status, *fragments):
    """Asserts an error reply: the status and {"error": message} naming every fragment."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body[:500]!r}"
    message = reply.error()
    for fragment in fragments:
        assert fragment in message, f"{status} message {message!r} does not mention {fragment!r}"
    return message


def kserve_tensor(name, array, datatype=None):
    array = np.asarray(array)
    datatype = datatype or {
        np.dtype(np.float32): "FP32",
        np.dtype(np.float64): "FP64",
        np.dtype(np.int64): "INT64",
        np.dtype(np.int32): "INT32",
        np.dtype(np.bool_): "BOOL",
    }[array.dtype]
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "data": array.ravel().tolist()}


def binary_body(header, raw_inputs):
    """(body, headers) for a KServe request whose JSON `header` is followed by raw bytes."""
    header_bytes = json.dumps(header).encode()
    body = header_bytes + b"".join(raw_inputs)
    return body, {"Inference-Header-Content-Length": str(len(header_bytes)),
                  "Content-Type": "application/octet-stream"}


def split_binary_reply(reply):
    """(json, {output name: bytes}) of a KServe reply that may carry binary outputs."""
    length = reply.headers.get("inference-header-content-length")
    if length is None:
        return reply.json(), {}
    length = int(length)
    header = json.loads(reply.body[:length])
    offset = length
    raw = {}
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            raw[output["name"]] = reply.body[offset:offset + size]
            offset += size
    assert offset == len(reply.body), f"{len(reply.body) - offset} unclaimed bytes after outputs"
    return header, raw


def bytes_element(value):
    return struct.pack("<I", len(value)) + value


def assert_linear_still_serves(client):
    """A correct KServe JSON inference succeeds on `client`'s connection."""
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 8.0]], np.float32)
    reply = client.post("/v2/models/linear/infer", {"inputs": [kserve_tensor("x", x)]})
    assert reply.status == 200, reply.body
    output = reply.json()["outputs"][0]
    assert output["shape"] == [2, 1]
    np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(2, 1),
                               linear_expected(x), rtol=1e-6)


# modeld_batch_size (a histogram of the rows each run of a model held), from /metrics.
BATCH_METRIC = re.compile(r'^modeld_batch_size_(bucket|sum|count)\{([^}]*)\}\s+(\S+)$', re.M)


def batch_metrics(http_address, model):
    """(runs with 1 row, runs, rows) of `model` from modeld_batch_size in /metrics."""
    text = urllib.request.urlopen(f"http://{http_address}/metrics", timeout=10).read().decode()
    one = runs = rows = 0.0
    for kind, labels, value in BATCH_METRIC.findall(text):
        if f'model="{model}"' not in labels:
            continue
        if kind == "bucket" and 'le="1"' in labels:
            one += float(value)
        elif kind == "count":
            runs += float(value)
        elif kind == "sum":
            rows += float(value)
    return one, runs, rows
