"""The memory budget end to end (docs/design/memory-budget.md), through the real binary over HTTP
and gRPC: eviction order, pinned and busy models, one load for many first requests, models too
big for the budget, deadlines while a model loads, reloads of evicted models in poll mode, the
repository API in explicit mode, RSS over many load/evict cycles, readiness, start-up refusals
and failed on-demand loads.

Every model is on the fake backend and holds `resident_mb` MiB of written memory while loaded
(budget_helpers.write_sized_model), so the sizes modeld measures are known: a budget of 40 MiB
holds two 16 MiB models, not three. Each test starts its own server (they start in
milliseconds); --model-min-residency=0 unless the test is about it, so evictions need no wait.
"""

import datetime
import re
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

import modeld
from budget_helpers import (
    EVICTED_RE,
    MIB,
    UNLOADED_REASON,
    Metrics,
    grpc_infer,
    grpc_infer_future,
    http_infer,
    index,
    loaded_models,
    log_count,
    state,
    timed,
    write_sized_model,
    write_weights,
)
from infer_helpers import make_stub, pb
from lifecycle_helpers import http_call, http_status, vm_rss_kib, wait_until
from modeld_server import ServerProcess, require_build

BUDGET_40M = ["--model-memory-budget=40M", "--model-min-residency=0"]


def three_models(repository):
    for name in ("a", "b", "c"):
        write_sized_model(repository, name, 16)


def assert_evicted_recently(reason):
    """`reason` is the index's "evicted at HH:MM:SS UTC ..." with a time of the last minute."""
    match = EVICTED_RE.match(reason)
    assert match, reason
    now = datetime.datetime.now(datetime.timezone.utc)
    at = now.replace(hour=int(match.group(1)), minute=int(match.group(2)),
                     second=int(match.group(3)), microsecond=0)
    seconds = (now - at).total_seconds() % 86400  # across midnight
    assert seconds < 60, (reason, now.isoformat())


def assert_used_is(metrics, mib, *models):
    """modeld_memory_budget_used_bytes is about `mib` MiB (the loaded models' sizes)."""
    used = metrics.used / MIB
    assert mib - 1 <= used <= mib + 3, (f"used {used:.1f} MiB, expected about {mib} "
                                        f"({', '.join(models)})")


# --- 1. eviction order ------------------------------------------------------------------------



def assert_holds(error, name, why):
    """The refusal names 16 MiB model `name` as holding the budget, `why` (pinned, busy), at
    its measured size: at least its files' 16 MiB, more by what loading it grew the process by
    (a few MiB more under ASan's allocator), never a whole second model's."""
    held = re.search(rf"'{name}' \({why}, (\d+(?:\.\d)?) MiB\)", error)
    assert held and 16 <= float(held.group(1)) < 24, (name, why, error)

def test_the_least_recently_used_model_is_evicted(launch, tmp_path):
    three_models(tmp_path)
    server = launch(tmp_path, BUDGET_40M)
    http = server.http_address
    stub = make_stub(server.channel())
    # Preloaded in repository order while they fit: a and b (32 MiB of 40), not c.
    assert loaded_models(http) == {"a", "b"}
    assert index(http)[("c", "1")] == ("UNAVAILABLE", UNLOADED_REASON)

    # b, then a: b is the least recently used though it loaded after a.
    assert http_infer(http, "b")[0] == 200
    assert grpc_infer(stub, "a") == "1"
    assert grpc_infer(stub, "c", seed=3) == "1"
    models = index(http)
    assert models[("a", "1")] == ("READY", "") and models[("c", "1")] == ("READY", ""), models
    assert models[("b", "1")][0] == "UNAVAILABLE", models
    assert_evicted_recently(models[("b", "1")][1])
    m = Metrics(http)
    assert (m.evictions("a"), m.evictions("b"), m.evictions("c")) == (0, 1, 0)
    assert m.loads("a", "preload") == m.loads("b", "preload") == m.loads("c", "on_demand") == 1
    assert m.waited("c", "served") == 1
    assert m.budget == 40 * MIB
    assert_used_is(m, 32, "a", "c")

    # a again, then b: c (loaded, and last used, before a's request) goes.
    assert http_infer(http, "a")[0] == 200
    status, reply = http_infer(http, "b", seed=5)
    assert status == 200, reply
    assert loaded_models(http) == {"a", "b"}
    m = Metrics(http)
    assert (m.evictions("a"), m.evictions("b"), m.evictions("c")) == (0, 1, 1)
    assert m.loads("b", "on_demand") == 1
    assert_used_is(m, 32, "a", "b")


# --- 2. pinned models ---------------------------------------------------------------------------


def test_pinned_models_are_never_evicted(launch, tmp_path):
    # p is pinned and never used: always the least recently used, never the one to go.
    write_sized_model(tmp_path, "p", 16, eviction="never")
    write_sized_model(tmp_path, "x", 16)
    write_sized_model(tmp_path, "y", 16)
    server = launch(tmp_path, BUDGET_40M)
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"p", "x"}
    for model in ("y", "x", "y", "x"):
        assert grpc_infer(stub, model) == "1", model
        assert loaded_models(http) == {"p", model}
    m = Metrics(http)
    assert m.evictions("p") == 0 and m.evictions("x") == 2 and m.evictions("y") == 2
    assert m.loads("p", "preload") == 1 and m.loads("p", "on_demand") == 0

    # Two pinned models filling the budget: a third cannot load, and the answer says why.
    other = tmp_path / "other"
    write_sized_model(other, "p", 16, eviction="never")
    write_sized_model(other, "q", 16, eviction="never")
    write_sized_model(other, "z", 16)
    server2 = launch(other, BUDGET_40M)
    status, reply = http_infer(server2.http_address, "z")
    assert status == 429, (status, reply)
    error = reply["error"]
    assert "model 'z' needs about 16 MiB (estimated from its files) and the budget of 40 MiB " \
           "is held by" in error, error
    assert_holds(error, "p", "pinned")
    assert_holds(error, "q", "pinned")
    assert re.search(r"; at most \d+(\.\d)? MiB can be made free$", error), error
    assert loaded_models(server2.http_address) == {"p", "q"}
    assert Metrics(server2.http_address).total("modeld_model_evictions_total") == 0


# --- 3. in-flight protection ------------------------------------------------------------------


def test_a_busy_model_is_skipped_and_the_next_least_recently_used_goes(launch, tmp_path):
    write_sized_model(tmp_path, "s", 16, sleep_ms=1200)
    write_sized_model(tmp_path, "t", 16)
    write_sized_model(tmp_path, "u", 16)
    server = launch(tmp_path, BUDGET_40M)
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"s", "t"}
    # s's requests start first, so s is the least recently used; but it is busy.
    busy = grpc_infer_future(stub, "s")
    time.sleep(0.3)
    assert http_infer(http, "t")[0] == 200
    assert grpc_infer(stub, "u") == "1"
    assert loaded_models(http) == {"s", "u"}
    m = Metrics(http)
    assert m.evictions("s") == 0 and m.evictions("t") == 1
    assert not busy.done(), "s went idle too early for the check"
    assert busy.result().model_version == "1"


def test_a_load_blocked_by_busy_and_pinned_models_names_them(launch, tmp_path):
    """x can only get room from s, busy with a request: x's request waits for s to go idle,
    up to --model-load-timeout, then gets DEADLINE_EXCEEDED naming what holds the budget; the
    next request loads x once s is idle, and s, not the pinned p, goes."""
    write_sized_model(tmp_path, "p", 16, eviction="never")
    write_sized_model(tmp_path, "s", 16, sleep_ms=3000)
    write_sized_model(tmp_path, "x", 16)
    server = launch(tmp_path, BUDGET_40M + ["--model-load-timeout=2"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"p", "s"}
    busy_since = time.monotonic()
    busy = grpc_infer_future(stub, "s")
    time.sleep(0.3)  # s's request is in flight until about 3 s from now

    (status, reply), took = timed(http_infer, http, "x")
    assert status == 504, (status, reply)
    error = reply["error"]
    assert error.startswith("model 'x' could not load in time (waited 2.0 s, until the "
                            "request's deadline or --model-load-timeout): "), error
    assert 1.9 <= took < 2.6, took
    held_by = re.escape("model 'x' needs about 16 MiB (estimated from its files) and the budget "
                        "of 40 MiB is held by ")
    assert re.search(held_by, error), error
    assert_holds(error, "p", "pinned")
    assert_holds(error, "s", "busy")
    assert re.search(r"; at most \d+(\.\d)? MiB can be made free$", error), error
    assert not busy.done(), "s went idle too early for the check"
    # The next request waits for s's request to end (no back-off after a refusal), then x loads.
    assert grpc_infer(stub, "x", timeout=10) == "1"
    loaded_after = time.monotonic() - busy_since
    assert loaded_after >= 2.95, f"x loaded {loaded_after:.2f} s after s's 3 s request began"
    assert busy.result().model_version == "1"  # s's request was not lost
    assert loaded_models(http) == {"p", "x"}
    m = Metrics(http)
    assert m.evictions("s") == 1 and m.evictions("p") == 0
    assert m.loads("x", "on_demand") == 1
    assert m.waited("x", "served") == 1 and m.waited("x", "failed") == 1


# --- 4. concurrent first requests ---------------------------------------------------------------


def test_concurrent_first_requests_share_one_load(launch, tmp_path):
    write_sized_model(tmp_path, "m", 16, load_sleep_ms=1500)
    server = launch(tmp_path, ["--model-memory-budget=40M", "--preload-models=false"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert state(http, "m") == "UNAVAILABLE"
    http_answers = []

    def http_client(seed):
        http_answers.append(http_infer(http, "m", seed=seed)[0])

    started = time.monotonic()
    futures = [grpc_infer_future(stub, "m", seed=i) for i in range(24)]
    threads = [threading.Thread(target=http_client, args=(100 + i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    sent = time.monotonic() - started
    versions = [future.result().model_version for future in futures]
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    assert sent < 1.0, f"the 32 requests took {sent:.2f} s to send: not concurrent enough"
    assert versions == ["1"] * 24 and http_answers == [200] * 8, (versions, http_answers)
    assert elapsed >= 1.4, elapsed  # they waited for the load (load_sleep_ms=1500)
    m = Metrics(http)
    assert m.loads("m", "on_demand") == 1
    assert log_count(server, r"model 'm': loading on demand") == 1
    assert m.waited("m", "served") == 32 and m.waited("m", "failed") == 0
    assert m.value("modeld_model_load_wait_seconds_count") == 32
    assert m.value("modeld_model_load_wait_seconds_sum") > 32 * 0.5


# --- 5. too big ---------------------------------------------------------------------------------


def test_a_model_bigger_than_the_budget_fails_with_both_sizes(launch, tmp_path):
    write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "big", 64)
    server = launch(tmp_path, ["--model-memory-budget=40M"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"a"}
    expected = ("model 'big' needs about 64 MiB (estimated from its files) and "
                "--model-memory-budget is 40 MiB")
    # It can never load: it is not ready, and every answer gives both sizes.
    status, reply = http_infer(http, "big")
    assert status == 503 and expected in reply["error"], (status, reply)
    answer = grpc_infer(stub, "big")
    assert isinstance(answer, grpc.RpcError), answer
    assert answer.code() == grpc.StatusCode.UNAVAILABLE and expected in answer.details()
    ready = urllib.request.Request(f"http://{http}/v2/models/big/ready")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(ready, timeout=5)
    # The others keep serving, nothing was evicted for it.
    assert grpc_infer(stub, "a") == "1" and http_infer(http, "a")[0] == 200
    m = Metrics(http)
    assert m.total("modeld_model_evictions_total") == 0 and m.loads("big", "on_demand") == 0
    assert_used_is(m, 16, "a")


def test_a_model_measured_bigger_than_the_budget_counts_as_the_budget(launch, tmp_path):
    """Its files say 1 MiB, its load takes 48 MiB (more than the 40 MiB budget): it loads,
    counts as the whole budget (with a warning), the next load evicts it, and it can load
    again alone."""
    write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "under", 48, weights_mib=1)
    write_sized_model(tmp_path, "z", 16)
    server = launch(tmp_path, BUDGET_40M + ["--preload-models=false"])
    http = server.http_address
    assert http_infer(http, "a")[0] == 200
    assert http_infer(http, "under")[0] == 200  # planned at 1 MiB: no eviction
    assert loaded_models(http) == {"a", "under"}
    assert_used_is(Metrics(http), 56, "a (16 MiB)", "under (counted as the 40 MiB budget)")
    server.wait_for_log(r"model 'under' measured 4[89] MiB at its load, more than the whole "
                        r"--model-memory-budget of 40 MiB though its files take 1\.0 MiB; "
                        r"counting it as the whole budget", 5)
    # z needs 16 MiB: used must fall to 24 at most, so both a (least recently used) and under go.
    assert http_infer(http, "z")[0] == 200
    assert loaded_models(http) == {"z"}
    m = Metrics(http)
    assert m.evictions("a") == 1 and m.evictions("under") == 1
    assert_used_is(m, 16, "z")
    # under, counted as the whole budget, loads again alone.
    assert http_infer(http, "under")[0] == 200
    assert loaded_models(http) == {"under"}
    m = Metrics(http)
    assert m.evictions("z") == 1 and m.loads("under", "on_demand") == 2
    assert_used_is(m, 40, "under")


# --- 6. deadlines while a model loads ----------------------------------------------------------


def test_a_request_gives_up_at_its_deadline_and_the_load_goes_on(launch, tmp_path):
    write_sized_model(tmp_path, "slow", 16, load_sleep_ms=2000)
    write_sized_model(tmp_path, "slow2", 16, load_sleep_ms=2000)
    write_sized_model(tmp_path, "fast", 1)
    server = launch(tmp_path, ["--model-memory-budget=40M", "--preload-models=false",
                               "--model-load-timeout=1"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert grpc_infer(stub, "fast") == "1"
    http_reply = []
    # HTTP has no deadline of its own: --model-load-timeout=1 bounds its wait. slow2's load
    # queues behind slow's (one loader), so it is still loading when the second passes.
    thread = threading.Thread(target=lambda: http_reply.append(timed(http_infer, http, "slow2")))
    answer, took = timed(grpc_infer, stub, "slow", timeout=0.2)
    thread.start()
    assert isinstance(answer, grpc.RpcError), answer
    assert answer.code() == grpc.StatusCode.DEADLINE_EXCEEDED, answer
    assert took < 1.0, took
    # Meanwhile the loaded model answers at once: loads never block other models' requests.
    answer, fast_took = timed(grpc_infer, stub, "fast")
    assert answer == "1" and fast_took < 0.5, (answer, fast_took)
    assert state(http, "slow") == "UNAVAILABLE"  # still loading
    thread.join(timeout=10)
    (status, reply), took = http_reply[0]
    assert status == 504, (status, reply)
    assert reply["error"].startswith("model 'slow2' is still loading (waited 1.0 s, until the "
                                     "request's deadline or --model-load-timeout)"), reply
    assert 0.9 <= took < 1.9, took
    # The server's own deadline answered both (not only the client's).
    wait_until(lambda: Metrics(http).waited("slow", "failed") == 1, 2,
               what="slow's waiter answered DEADLINE_EXCEEDED")
    m = Metrics(http)
    assert m.waited("slow2", "failed") == 1 and m.waited("slow", "served") == 0
    # Both loads go on without a new request; afterwards requests find the models loaded.
    wait_until(lambda: loaded_models(http) == {"fast", "slow", "slow2"}, 8,
               what="both models loaded")
    assert timed(grpc_infer, stub, "slow")[1] < 0.5
    assert timed(http_infer, http, "slow2")[1] < 0.5
    m = Metrics(http)
    assert m.loads("slow", "on_demand") == 1 and m.loads("slow2", "on_demand") == 1
    assert m.waited("slow", "served") == 0 and m.waited("slow2", "served") == 0


# --- 7. poll mode: an evicted model whose folder changed -----------------------------------------


def test_an_evicted_model_loads_its_new_version_and_config(launch, tmp_path):
    folder = write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "b", 16)
    server = launch(tmp_path, ["--model-memory-budget=24M", "--model-min-residency=0",
                               "--model-control-mode=poll", "--repository-poll-secs=1"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"a"}
    assert grpc_infer(stub, "b") == "1"
    assert loaded_models(http) == {"b"}

    # a, evicted, gets version 2 holding 12 MiB, and a config that says so: with b's 16 it
    # exceeds the 24 MiB budget whatever the measured sizes, so b goes.
    partial = folder / ".2.partial"
    write_sized_model(tmp_path, "a", 12, versions=())  # config.pbtxt: resident_mb 12
    write_weights(partial, 12)
    partial.rename(folder / "2")
    wait_until(lambda: index(http).get(("a", "2")) == ("UNAVAILABLE", UNLOADED_REASON), 5,
               what="a version 2 planned, unloaded")
    assert ("a", "1") not in index(http)
    assert log_count(server, r"model 'a' version 2 is ready") == 0  # planned, not loaded

    assert grpc_infer(stub, "a") == "2"
    assert loaded_models(http) == {"a"}
    m = Metrics(http)
    assert m.loads("a", "on_demand") == 1 and m.evictions("b") == 1
    assert_used_is(m, 12, "a (12 MiB now)")


def test_an_evicted_model_that_grew_is_planned_at_its_new_size(launch, tmp_path):
    folder = write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "b", 16)
    write_sized_model(tmp_path, "c", 16)
    server = launch(tmp_path, BUDGET_40M + ["--model-control-mode=poll",
                                            "--repository-poll-secs=1"])
    http = server.http_address
    assert http_infer(http, "c")[0] == 200  # a goes
    assert loaded_models(http) == {"b", "c"}
    write_sized_model(tmp_path, "a", 64, versions=(2,))
    too_big = ("model 'a' needs about 64 MiB (estimated from its files) and "
               "--model-memory-budget is 40 MiB")
    # Planned at its new files' size, which can never fit: not loadable, and says why.
    wait_until(lambda: index(http).get(("a", "2")) == ("UNAVAILABLE", too_big), 5,
               what="a version 2 planned at 64 MiB")
    status, reply = http_infer(http, "a")
    used = Metrics(http).used / MIB
    assert status == 503 and too_big in reply["error"], \
        f"got {status} {reply}; used {used:.0f} MiB of a 40 MiB budget"
    assert used <= 40


def test_a_reload_of_a_loaded_model_counts_its_new_size(launch, tmp_path):
    # docs/operations.md: a loaded model reloads as without a budget (new copy, then the old
    # one goes). The budget must still count what the new copy holds.
    write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "b", 16)
    server = launch(tmp_path, BUDGET_40M + ["--model-control-mode=poll",
                                            "--repository-poll-secs=1"])
    http = server.http_address
    assert loaded_models(http) == {"a", "b"}
    write_sized_model(tmp_path, "a", 30, versions=(2,))  # a, loaded, grows to 30 MiB
    wait_until(lambda: ("a", "2") in index(http) and ("a", "1") not in index(http), 5,
               what="the rescan of a")
    models = index(http)
    assert models[("a", "2")] == ("READY", ""), models
    expected = 30 + (16 if models[("b", "1")][0] == "READY" else 0)
    used = Metrics(http).used / MIB
    assert used >= expected - 1, (f"modeld_memory_budget_used_bytes says {used:.1f} MiB; "
                                  f"loaded: {models}, about {expected} MiB")


# --- 8. explicit mode ------------------------------------------------------------------------


def test_explicit_loads_and_unloads_count_against_the_budget(launch, tmp_path):
    three_models(tmp_path)
    server = launch(tmp_path, BUDGET_40M + ["--model-control-mode=explicit"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert loaded_models(http) == {"a", "b"}

    # Loading c evicts the least recently used (a: loaded first, no request since).
    assert http_call(http, "POST", "/v2/repository/models/c/load", {}) == (200, {})
    assert loaded_models(http) == {"b", "c"}
    m = Metrics(http)
    assert m.loads("c", "explicit") == 1 and m.evictions("a") == 1
    assert_used_is(m, 32, "b", "c")

    # Unloading c frees its size; c is then not served at all (not loadable on demand).
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="c"), timeout=10)
    assert_used_is(Metrics(http), 16, "b")
    status, reply = http_infer(http, "c")
    assert status == 404, (status, reply)
    assert index(http)[("c", "")] == ("UNAVAILABLE", "unloaded")
    assert http_status(http, "/v2/models/c/ready") != 200

    # a loads back into the freed room: no eviction.
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="a"), timeout=10)
    assert loaded_models(http) == {"a", "b"}
    m = Metrics(http)
    assert m.loads("a", "explicit") == 1 and m.evictions("b") == 0
    assert m.total("modeld_model_evictions_total") == 1
    assert_used_is(m, 32, "a", "b")
    # Loading c again evicts the least recently used: b (preloaded, no request since).
    assert http_call(http, "POST", "/v2/repository/models/c/load", {}) == (200, {})
    assert loaded_models(http) == {"a", "c"}
    assert Metrics(http).evictions("b") == 1
    assert grpc_infer(stub, "c") == "1"


# --- 9. RSS over load/evict cycles --------------------------------------------------------------

CYCLES = 200


@pytest.mark.measures_memory
def test_rss_stays_bounded_over_load_evict_cycles(launch, tmp_path):
    write_sized_model(tmp_path, "x", 16)
    write_sized_model(tmp_path, "y", 16)
    server = launch(tmp_path, ["--model-memory-budget=24M", "--model-min-residency=0"])
    http = server.http_address
    stub = make_stub(server.channel())
    pid = server.proc.pid
    early = None
    started = time.monotonic()
    for cycle in range(CYCLES):
        model = "y" if cycle % 2 == 0 else "x"
        assert grpc_infer(stub, model, seed=cycle) == "1", (cycle, model)
        if cycle == 9:
            early = vm_rss_kib(pid)
    took = time.monotonic() - started
    late = vm_rss_kib(pid)
    m = Metrics(http)
    loads = m.loads("x", "on_demand") + m.loads("y", "on_demand")
    print(f"\n{CYCLES} requests in {took:.1f} s, {loads:.0f} loads; RSS {early // 1024} MiB "
          f"after 10, {late // 1024} MiB after {CYCLES}")
    assert late < early + 30 * 1024, f"RSS grew from {early // 1024} to {late // 1024} MiB"
    # Every request loaded its model and evicted the other one: no load was measured small
    # enough for both to fit (a load measured at ~0 B, the evicted model's pages going back
    # during it, once kept both loaded: now a measurement is at least the files' size).
    odd = [line for line in server.log_lines() if " loaded (" in line
           and not re.search(r"\): 1[67] MiB", line)]
    assert loads == CYCLES and not odd, (loads, odd[:5])
    assert m.total("modeld_model_evictions_total") == CYCLES
    assert_used_is(m, 16, "one of x, y")
    assert len(loaded_models(http)) == 1


# --- 10. readiness ------------------------------------------------------------------------------


def test_ready_with_every_model_unloaded(launch, tmp_path):
    write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "b", 16)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "1").mkdir()
    (broken / "config.pbtxt").write_text('name: "broken"\nbackend: "no_such_backend"\n')
    server = launch(tmp_path, ["--model-memory-budget=40M", "--preload-models=false"])
    http = server.http_address
    stub = make_stub(server.channel())

    def readiness():
        return {
            "server": http_status(http, "/v2/health/ready"),
            "a": http_status(http, "/v2/models/a/ready"),
            "b": http_status(http, "/v2/models/b/ready"),
            "broken": http_status(http, "/v2/models/broken/ready"),
            "unknown": http_status(http, "/v2/models/unknown/ready"),
        }

    before = readiness()
    assert (before["server"], before["a"], before["b"]) == (200, 200, 200), before
    # Not every model is ready: one that cannot load, one that does not exist.
    assert before["broken"] not in (200, None) and before["unknown"] not in (200, None), before
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="a"), timeout=10).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="broken"), timeout=10).ready
    with modeld.Client(f"http://{http}", timeout=10) as client:
        assert client.ready() and client.model_ready("b")
    models = index(http)
    assert models[("a", "1")] == models[("b", "1")] == ("UNAVAILABLE", UNLOADED_REASON), models
    m = Metrics(http)
    assert m.used == 0 and m.budget == 40 * MIB
    assert m.total("modeld_model_loads_total") == 0
    assert m.value("modeld_model_state", model="a", version="1", state="unloaded") == 1
    assert m.value("modeld_model_state", model="b", version="1", state="unloaded") == 1

    # The first request loads a; b stays unloaded and ready.
    assert http_infer(http, "a")[0] == 200
    models = index(http)
    assert models[("a", "1")] == ("READY", "") and models[("b", "1")][0] == "UNAVAILABLE"
    after = readiness()
    assert (after["server"], after["a"], after["b"]) == (200, 200, 200), after
    m = Metrics(http)
    assert m.loads("a", "on_demand") == 1 and m.total("modeld_model_loads_total") == 1
    assert m.value("modeld_model_state", model="a", version="1", state="ready") == 1
    assert m.value("modeld_model_state", model="a", version="1", state="unloaded") == 0
    assert m.value("modeld_model_state", model="b", version="1", state="unloaded") == 1
    assert_used_is(m, 16, "a")


# --- 11. start-up refusals ----------------------------------------------------------------------


def test_start_up_refuses_budgets_and_flags_that_make_no_sense(tmp_path):
    require_build()
    write_sized_model(tmp_path, "a", 16)
    write_sized_model(tmp_path, "small", 8)
    cases = {
        "too small": (["--model-memory-budget=1M"],
                      r"no model fits in --model-memory-budget=1(\.0)? MiB: the smallest, "
                      r"'small', needs about 8(\.0)? MiB \(estimated from its files\)"),
        "unparsable": (["--model-memory-budget=lots"], r"--model-memory-budget\b.*lots"),
        "preload without a budget": (["--preload-models=false"],
                                     "--preload-models needs --model-memory-budget"),
        "timeout without a budget": (["--model-load-timeout=5"],
                                     "--model-load-timeout needs --model-memory-budget"),
        "zero timeout": (["--model-memory-budget=1G", "--model-load-timeout=0"],
                         "--model-load-timeout expects a positive integer, got '0'"),
        "preload not a bool": (["--model-memory-budget=1G", "--preload-models=yes"],
                               "--preload-models expects true or false, got 'yes'"),
    }
    servers = {name: ServerProcess(tmp_path, args) for name, (args, _) in cases.items()}
    problems = []
    for name, server in servers.items():
        code = server.wait(timeout=20)
        expected = cases[name][1]
        if code == 0 or not re.search(expected, server.log) or "listening" in server.log:
            problems.append(f"{name}: exit {code}, log:\n{server.log}")
    assert not problems, "\n".join(problems)


# --- 12. a failed on-demand load -----------------------------------------------------------------


def test_a_failed_load_answers_with_its_reason_and_backs_off(launch, tmp_path):
    write_sized_model(tmp_path, "ok", 16)
    # (The fake backend fails a load_error at once, before any load_sleep_ms.)
    write_sized_model(tmp_path, "bad", 16, load_error="disk on fire")
    server = launch(tmp_path, ["--model-memory-budget=40M", "--preload-models=false"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert grpc_infer(stub, "ok") == "1"

    status, reply = http_infer(http, "bad")
    failed_at = time.monotonic()
    assert status == 503, (status, reply)
    assert reply["error"].startswith("model 'bad' could not be loaded on demand: "), reply
    assert "disk on fire" in reply["error"], reply
    server.wait_for_log(r"model 'bad': loading on demand", 5)

    # Inside the back-off (1 s): the same failure at once, without another try.
    answer = grpc_infer(stub, "bad")
    assert time.monotonic() - failed_at < 1.0, "too slow to check the back-off"
    assert isinstance(answer, grpc.RpcError), answer
    assert (answer.code(), answer.details()) == (grpc.StatusCode.UNAVAILABLE, reply["error"])
    time.sleep(0.2)  # the log is read on a thread: a second try would show by now
    assert log_count(server, r"model 'bad': loading on demand") == 1

    state_, reason = index(http)[("bad", "1")]
    assert state_ == "UNAVAILABLE", reason
    assert reason.startswith("its load on demand failed (retried on a later request): "), reason
    assert "disk on fire" in reason, reason
    # After the back-off it is tried again (and fails again).
    wait_until(lambda: time.monotonic() - failed_at > 1.1, 3)
    status, reply2 = http_infer(http, "bad")
    assert status == 503 and "disk on fire" in reply2["error"], (status, reply2)
    wait_until(lambda: log_count(server, r"model 'bad': loading on demand") == 2, 5,
               what="a second try of bad's load")
    assert http_infer(http, "ok")[0] == 200 and loaded_models(http) == {"ok"}
    m = Metrics(http)
    # The two tries waited (and failed); the request inside the back-off did not wait.
    assert m.waited("bad", "failed") == 2 and m.total("modeld_model_loads_total") == 1
    assert m.value("modeld_model_state", model="bad", version="1", state="unloaded") == 1
    # The modeld client says the same: a model that failed to load, with the reason.
    with modeld.Client(f"grpc://{server.address}", timeout=10, retries=0) as client:
        with pytest.raises(modeld.ModeldError) as raised:
            client.infer("bad", {"INPUT0": [[1.0, 2.0, 3.0, 4.0]]})
        assert "disk on fire" in str(raised.value), raised.value
