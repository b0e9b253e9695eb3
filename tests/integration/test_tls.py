"""TLS and mTLS on gRPC (both gRPC ports) and HTTPS, with certificates made at test time and
real clients: grpc with ssl_channel_credentials, requests with verify=CA, the modeld client,
and Triton's client (tritonclient.grpc with its ssl options, in a child process)."""

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests

import modeld
from infer_helpers import assert_still_serving, linear_expected, make_stub, pb
from pki import make_pki

TRITON_SCRIPT = Path(__file__).with_name("tls_tritonclient_check.py")
# tensorflow.serving.ModelService/GetModelStatus {model_spec {name: "linear"}}, encoded by hand
# (the tests have no TF Serving stubs of their own).
TF_STATUS_PATH = "/tensorflow.serving.ModelService/GetModelStatus"
TF_STATUS_REQUEST = b"\n\x08\n\x06linear"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_flags(pki, transport, mtls):
    flags = [f"--{transport}-tls-cert={pki.path('server.crt')}",
             f"--{transport}-tls-key={pki.path('server.key')}"]
    if mtls:
        flags.append(f"--{transport}-tls-client-ca={pki.ca}")
    return flags


def client_credentials(pki, cert="client"):
    if cert is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.read("ca.crt"))
    return grpc.ssl_channel_credentials(
        root_certificates=pki.read("ca.crt"),
        private_key=pki.read(f"{cert}.key"),
        certificate_chain=pki.read(f"{cert}.crt"),
    )


def live_over(address, credentials):
    channel = (grpc.secure_channel(address, credentials) if credentials is not None
               else grpc.insecure_channel(address))
    try:
        return make_stub(channel).ServerLive(pb.ServerLiveRequest(), timeout=5).live
    finally:
        channel.close()


def test_grpc_tls_serves_verified_clients_only(launch, example_repository, pki):
    server = launch(example_repository, tls_flags(pki, "grpc", mtls=False),
                    channel_credentials=client_credentials(pki, cert=None))
    assert "gRPC serves TLS" in server.log
    assert_still_serving(make_stub(server.channel()))
    # A plaintext client cannot talk to the TLS port.
    with pytest.raises(grpc.RpcError) as info:
        live_over(server.address, None)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # Nor a client that does not trust the server's CA.
    untrusting = grpc.ssl_channel_credentials(root_certificates=pki.read("rogue_ca.crt"))
    with pytest.raises(grpc.RpcError) as info:
        live_over(server.address, untrusting)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # The modeld client, by URL scheme and by CA file.
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    with modeld.Client(f"grpcs://{server.address}", tls_ca=pki.ca, timeout=10) as client:
        np.testing.assert_allclose(client.predict("linear", x), linear_expected(x), rtol=1e-6)
    with modeld.Client(f"grpc://{server.address}", tls_ca=pki.ca, timeout=10) as client:
        assert client.live()
    with modeld.Client(f"grpc://{server.address}", timeout=3, retries=0) as client:
        with pytest.raises(modeld.Unavailable):
            client.live()


def test_grpc_mtls_requires_a_client_certificate_from_the_ca(launch, example_repository, pki):
    server = launch(example_repository, tls_flags(pki, "grpc", mtls=True),
                    channel_credentials=client_credentials(pki))
    assert "gRPC serves TLS and requires client certificates" in server.log
    assert_still_serving(make_stub(server.channel()))
    for refused in (None, "rogue"):  # no certificate; one signed by another CA
        with pytest.raises(grpc.RpcError) as info:
            live_over(server.address, client_credentials(pki, cert=refused))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, refused
    with modeld.Client(f"grpcs://{server.address}", tls_ca=pki.ca,
                       tls_cert=pki.path("client.crt"), tls_key=pki.path("client.key"),
                       timeout=10) as client:
        x = np.array([[4.0, 5.0, 6.0]], np.float32)
        np.testing.assert_allclose(client.predict("linear", x), linear_expected(x), rtol=1e-6)
    # Triton's client with its ssl options (a child process: see tritonclient_check.py).
    result = subprocess.run(
        [sys.executable, str(TRITON_SCRIPT), server.address, pki.ca, pki.path("client.key"),
         pki.path("client.crt")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed 3 checks" in result.stdout, result.stdout


def test_tfserving_port_gets_the_same_credentials(launch, example_repository, pki, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("tf-token\n")
    server = launch(example_repository,
                    [*tls_flags(pki, "grpc", mtls=True), "--tfserving-grpc-address=127.0.0.1:0",
                     f"--auth-token-file={tokens}"],
                    channel_credentials=client_credentials(pki))
    port = int(server.wait_for_log(r"TensorFlow Serving gRPC listening on 127\.0\.0\.1:(\d+)")
               .group(1))
    address = f"127.0.0.1:{port}"

    def status(credentials, metadata=None):
        channel = (grpc.secure_channel(address, credentials) if credentials is not None
                   else grpc.insecure_channel(address))
        try:
            return channel.unary_unary(TF_STATUS_PATH)(TF_STATUS_REQUEST, timeout=10,
                                                       metadata=metadata)
        finally:
            channel.close()

    for credentials in (None, client_credentials(pki, cert=None)):
        with pytest.raises(grpc.RpcError) as info:
            status(credentials, [("authorization", "Bearer tf-token")])
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as info:
        status(client_credentials(pki))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answer = status(client_credentials(pki), [("authorization", "Bearer tf-token")])
    # model_version_status { version: 1 state: AVAILABLE (30) }: field 2, varint 30.
    assert b"\x08\x01\x10\x1e" in answer, answer


def test_https_with_a_ca_and_with_client_certificates(launch, example_repository, pki):
    server = launch(example_repository, tls_flags(pki, "http", mtls=False))
    assert "HTTP serves HTTPS" in server.log
    base = f"https://{server.http_address}"
    assert requests.get(f"{base}/v2/health/ready", verify=pki.ca, timeout=10).status_code == 200
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    reply = requests.post(f"{base}/v2/models/linear/infer", json=body, verify=pki.ca, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == pytest.approx([1 - 5 + 12 + 1.5])
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{base}/v2/health/ready", verify=pki.path("rogue_ca.crt"), timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{server.http_address}/v2/health/ready", timeout=10)
    with modeld.Client(f"https://{server.http_address}", tls_ca=pki.ca, timeout=10) as client:
        x = np.array([[1.0, 0.0, -1.0]], np.float32)
        np.testing.assert_allclose(client.predict("linear", x), linear_expected(x), rtol=1e-6)
    # The server still serves plain requests after the failed handshakes.
    assert requests.get(f"{base}/v2/health/live", verify=pki.ca, timeout=10).status_code == 200


def test_https_mtls(launch, example_repository, pki):
    server = launch(example_repository, tls_flags(pki, "http", mtls=True))
    base = f"https://{server.http_address}"
    good = (pki.path("client.crt"), pki.path("client.key"))
    reply = requests.get(f"{base}/v2/health/ready", verify=pki.ca, cert=good, timeout=10)
    assert reply.status_code == 200
    for cert in (None, (pki.path("rogue.crt"), pki.path("rogue.key"))):
        with pytest.raises(requests.exceptions.ConnectionError):  # SSLError is one
            requests.get(f"{base}/v2/health/ready", verify=pki.ca, cert=cert, timeout=10)
    with modeld.Client(f"https://{server.http_address}", tls_ca=pki.ca,
                       tls_cert=good[0], tls_key=good[1], timeout=10) as client:
        assert client.ready()


def test_bad_certificate_files_stop_the_start_naming_the_flag(launch, example_repository, pki):
    server = launch(example_repository,
                    [f"--grpc-tls-cert={pki.path('server.crt')}",
                     f"--grpc-tls-key={pki.path('client.key')}"], wait=False)
    assert server.wait() == 1
    assert "--grpc-tls-key: the key in" in server.log
    assert "does not belong to the certificate" in server.log
    server = launch(example_repository, [f"--http-tls-cert={pki.path('missing.crt')}",
                                         f"--http-tls-key={pki.path('server.key')}"], wait=False)
    assert server.wait() == 1
    assert "--http-tls-cert: cannot read" in server.log
