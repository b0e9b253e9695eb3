"""The Redis transport authenticates with the URL's credentials (AUTH [user] password) against
a real redis-server with requirepass and with an ACL user; a refused password is a clear error
and leaves modeld running, not ready."""

import urllib.request

import numpy as np
import pytest
import redis

import modeld
from redis_helpers import (  # noqa: F401  (redis fixtures and helpers)
    check_echo,
    envelope,
    infer_request,
    ready,
    wait_reply,
    wait_until,
    write_fake_repository,
    xadd,
)
from redis_server import RedisServer

ADMIN_PASSWORD = "admin-pw-1"
ACL_USER, ACL_PASSWORD = "modeld", "acl-s3cret"


@pytest.fixture
def protected_redis():
    server = RedisServer(
        ["--requirepass", ADMIN_PASSWORD,
         "--user", ACL_USER, "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all"],
        password=ADMIN_PASSWORD)
    yield server
    server.close()


def serves_one_request(server, protected_redis):
    client = protected_redis.client()
    message = envelope(infer_request("echo", [1, 2, 3, 4]))
    xadd(client, message)
    check_echo(wait_reply(client, message.reply_key), message.request_id, [1, 2, 3, 4])


@pytest.mark.parametrize("credentials", [f":{ADMIN_PASSWORD}", f"{ACL_USER}:{ACL_PASSWORD}"],
                         ids=["requirepass", "acl-user"])
def test_modeld_authenticates_with_the_url_credentials(launch, tmp_path, protected_redis,
                                                       credentials):
    url = f"redis://{credentials}@127.0.0.1:{protected_redis.port}/0"
    server = launch(write_fake_repository(tmp_path), [f"--redis-url={url}"])
    server.wait_for_log(r"redis: consuming")
    assert ADMIN_PASSWORD not in server.log and ACL_PASSWORD not in server.log
    wait_until(lambda: ready(server), what="ready once authenticated")
    serves_one_request(server, protected_redis)
    # The modeld client goes through the same Redis with the same kind of URL.
    with modeld.Client(url, timeout=10) as client:
        out = client.infer("echo", {"INPUT0": np.array([[5, 6, 7, 8]], np.float32)})
        np.testing.assert_array_equal(out["OUTPUT0"], [[5, 6, 7, 8]])


@pytest.mark.parametrize("credentials", [":wrong-password", f"{ACL_USER}:wrong", "nobody:x"],
                         ids=["default-user", "acl-user", "unknown-user"])
def test_a_refused_password_is_reported_and_modeld_stays_up_not_ready(
        launch, tmp_path, protected_redis, credentials):
    url = f"redis://{credentials}@127.0.0.1:{protected_redis.port}/0"
    server = launch(write_fake_repository(tmp_path), [f"--redis-url={url}"])
    server.wait_for_log(r"redis: Redis at 127\.0\.0\.1:\d+/0 refused the connection set-up: "
                        r"WRONGPASS")
    assert "wrong" not in server.log.replace("WRONGPASS", "")  # the password is never logged
    assert server.running()
    assert not ready(server)
    with urllib.request.urlopen(f"http://{server.http_address}/v2/health/live", timeout=10):
        pass  # live: the process serves; only the Redis link is down
    with modeld.Client(url, timeout=5, retries=0) as client:
        with pytest.raises(modeld.ModeldError) as info:
            client.live()
        assert info.value.code == "UNAUTHENTICATED", info.value
    # The queue is still there for a modeld with the right password.
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=protected_redis.port, password="wrong-password").ping()
