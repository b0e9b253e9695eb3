"""Triton's client (tritonclient.grpc) over TLS with a client certificate, against a running
modeld. Run by test_tls.py in a child process (tritonclient's protobuf messages collide with
modeld's generated stubs). Usage:

    python tls_tritonclient_check.py HOST:PORT CA_PEM CLIENT_KEY_PEM CLIENT_CERT_PEM
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def main(address, ca, key, cert):
    client = grpcclient.InferenceServerClient(
        address, ssl=True, root_certificates=ca, private_key=key, certificate_chain=cert)
    assert client.is_server_live()
    print("ok: live over mTLS")
    x = grpcclient.InferInput("x", [1, 3], "FP32")
    x.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
    y = client.infer("linear", [x], model_version="1").as_numpy("y")
    np.testing.assert_allclose(y, [[0.5 - 2.5 + 6.0 + 0.75]], rtol=1e-6)
    print("ok: infer over mTLS")
    without_cert = grpcclient.InferenceServerClient(address, ssl=True, root_certificates=ca)
    try:
        without_cert.is_server_live()
    except InferenceServerException as error:
        assert "UNAVAILABLE" in str(error.status()), error
    else:
        raise AssertionError("a client without a certificate was served")
    print("ok: refused without a client certificate")
    print("passed 3 checks")


if __name__ == "__main__":
    main(*sys.argv[1:])
