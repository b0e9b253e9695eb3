"""The client's TLS and token arguments, checked before anything connects (no server)."""

import pytest

import modeld
from modeld._common import make_security, parse_url


def test_tls_schemes_map_to_their_transport():
    assert parse_url("grpcs://h:9").scheme == "grpc" and parse_url("grpcs://h:9").tls
    assert parse_url("https://h/p").scheme == "http" and parse_url("https://h").port == 8000
    assert not parse_url("grpc://h").tls


def test_any_tls_file_turns_tls_on(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert make_security(False, "grpc", str(ca), None, None, None).tls
    assert not make_security(False, "http", None, None, None, "tok").tls
    assert make_security(True, "http", None, None, None, None).tls


def test_security_arguments_are_checked(tmp_path):
    pem = tmp_path / "a.pem"
    pem.write_text("x")
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        modeld.Client("grpc://h:1", tls_cert=str(pem))
    with pytest.raises(ValueError, match="tls_ca: no file at"):
        modeld.Client("https://h:1", tls_ca=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="token must be a non-empty string without spaces"):
        modeld.Client("http://h:1", token="two words")
    with pytest.raises(ValueError, match="a Redis URL carries its own credentials"):
        modeld.Client("redis://h:1/0", token="t")


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
