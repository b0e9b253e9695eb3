"""The client's TLS and token arguments, checked before anything connects (no server)."""

import pytest

import modeld
from modeld._common import make_security, parse_url

#: Enough PEM for the client's own check (the marker); no real certificate.
PEM_MARKER = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"


def test_tls_schemes_map_to_their_transport():
    assert parse_url("grpcs://h:9").scheme == "grpc" and parse_url("grpcs://h:9").tls
    assert parse_url("https://h/p").scheme == "http" and parse_url("https://h").port == 8000
    assert not parse_url("grpc://h").tls


def test_any_tls_file_turns_tls_on(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM_MARKER)
    assert make_security(False, "grpc", str(ca), None, None, None).tls
    assert not make_security(False, "http", None, None, None, "tok").tls
    assert make_security(True, "http", None, None, None, None).tls


def test_security_arguments_are_checked(tmp_path):
    pem = tmp_path / "a.pem"
    pem.write_text(PEM_MARKER)
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        modeld.Client("grpc://h:1", tls_cert=str(pem))
    with pytest.raises(ValueError, match="tls_ca: no file at"):
        modeld.Client("https://h:1", tls_ca=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="token must be a non-empty string without spaces"):
        modeld.Client("http://h:1", token="two words")
    with pytest.raises(ValueError, match="a Redis URL carries its own credentials"):
        modeld.Client("redis://h:1/0", token="t")


@pytest.mark.parametrize("url", ["grpcs://h:1", "https://h:1"])
def test_tls_files_without_pem_data_are_refused_before_connecting(tmp_path, url):
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("not a certificate")
    with pytest.raises(ValueError, match="tls_ca: .*ca.crt' holds no PEM data"):
        modeld.Client(url, tls_ca=str(not_pem))
    with pytest.raises(ValueError, match="tls_key: .*ca.crt' holds no PEM data"):
        modeld.Client(url, tls_cert=str(_pem(tmp_path)), tls_key=str(not_pem))


def test_https_pem_files_that_do_not_load_are_a_value_error(tmp_path):
    garbage = _pem(tmp_path)  # the marker, but no certificate in it
    with pytest.raises(ValueError, match="tls_ca: .* does not load"):
        modeld.Client("https://h:1", tls_ca=str(garbage))
    with pytest.raises(ValueError, match="do not load as a certificate and its key"):
        modeld.Client("https://h:1", tls_cert=str(garbage), tls_key=str(garbage))


def _pem(tmp_path):
    path = tmp_path / "marker.pem"
    path.write_text(PEM_MARKER)
    return path


def test_the_token_is_not_shown():
    client = modeld.Client("http://h:1", token="s3cret-token")
    try:
        assert "s3cret-token" not in repr(client)
        assert "s3cret-token" not in repr(client._endpoint)
    finally:
        client.close()


def test_the_asyncio_http_client_refuses_https():
    import modeld.aio

    with pytest.raises(ValueError, match="does not speak HTTPS"):
        modeld.aio.Client("https://h:1")
