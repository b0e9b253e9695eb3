# Thin verbs over CMake, the venv and pytest. `make run` and `make test` set everything up.
BUILD_DIR ?= build
MODELS    ?= examples/models
PY        := .venv/bin/python
GRPC_ADDRESS ?= 127.0.0.1:8001
HTTP_ADDRESS ?= 127.0.0.1:8000
DEMO_ADDRESS ?= 127.0.0.1:8080
AMQP ?= 0
# The KServe and Redis messages (Python tests use TensorFlow's own for proto/tensorflow).
PROTOS    := $(wildcard proto/kserve/*.proto proto/modeld/*.proto)
# ccache: paths relative to the checkout, so a fresh clone elsewhere reuses the cache; and the
# build folder left out of the hash of -g compiles (the sanitized trees are RelWithDebInfo),
# which ccache adds by default and which differs in every clone (CI clones anew). Their debug
# info then names the folder of the build that filled the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
# Sanitized builds (README "Testing"), all without TensorFlow (the sanitizer runtimes refuse
# RTLD_DEEPBIND): make check's ASan + UBSan tree, built with clang so that it also holds the
# libFuzzer targets (one sanitized build for the unit tests, the end-to-end suite and the
# fuzzing pass), and TSan's.
ASAN_BUILD_DIR ?= build-asan
TSAN_BUILD_DIR ?= build-tsan
FUZZ_BUILD_DIR ?= $(ASAN_BUILD_DIR)
FUZZ_SECONDS   ?= 60
# make check's short fuzzing pass: seconds per target, after every corpus input is replayed.
CI_FUZZ_SECONDS ?= 10
SANITIZED_CMAKE := -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODELD_WITH_TENSORFLOW=OFF \
                   -DMODELD_BUILD_BENCH=OFF
ASAN_CMAKE := $(SANITIZED_CMAKE) -DCMAKE_CXX_COMPILER=clang++ -DMODELD_SANITIZE=address
# A tree configured with another compiler (an older GCC build-asan) is made anew.
ASAN_CONFIGURE = grep -qs '^CMAKE_CXX_COMPILER:.*clang' $(1)/CMakeCache.txt || rm -rf $(1); \
                 cmake -S . -B $(1) $(ASAN_CMAKE) > /dev/null

.PHONY: all setup build python run test check unit-test integration-test python-test models bench \
        format clean test-asan test-tsan fuzz fuzz-build install \
        image image-no-tensorflow image-test wheel-test

all: build

setup:
	@scripts/setup

build: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(BUILD_DIR)
	@$(MAKE) --no-print-directory $(BUILD_DIR)/python/.stamp python

# modeld installed under PREFIX (bin/, and lib/modeld with the framework libraries from the
# wheels; cmake/install.cmake): it runs without the checkout. DESTDIR works as usual.
PREFIX ?= /opt/modeld
install: build
	@cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# Images with podman (Containerfile; README, "Deploy"). No registry here: the base is a local
# Debian 12 made by mmdebstrap (scripts/image-base), and the build stage gets the checkout's
# .venv (the wheels, at the pinned versions) and ccache's folder mounted, so a warm build
# recompiles nothing. Every podman call needs these options on these machines
# (docs/deploy.md, "How make image works on a machine without a registry"); the host's CA
# bundle goes in for pip, for machines that reach PyPI through a TLS-inspecting proxy.
IMAGE         ?= localhost/modeld:latest
IMAGE_NO_TF   ?= localhost/modeld:latest-no-tensorflow
DEMO_IMAGE    ?= localhost/modeld-demo:latest
REDIS_IMAGE   ?= localhost/modeld-redis:latest
RABBITMQ_IMAGE ?= localhost/modeld-rabbitmq:latest
IMAGE_BASE    ?= localhost/bookworm-base:latest
PODMAN        := podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file
PODMAN_BUILD   = $(PODMAN) build --format docker --network=host --ulimit nofile=1024:1024 \
                 --ulimit nproc=1024:1024 --build-arg BASE_IMAGE=$(IMAGE_BASE) \
                 --build-arg LANG=$$LANG --build-arg LC_ALL=$$LC_ALL \
                 --volume $(CURDIR)/.venv:/src/.venv:ro \
                 --volume /etc/ssl/certs/ca-certificates.crt:/etc/host-ca.crt:ro \
                 --build-arg PIP_CERT=/etc/host-ca.crt \
                 --volume $$(ccache -k cache_dir):/ccache -f Containerfile
export PODMAN

# The build stages are tagged too (modeld-build:*), so the next build finds them as its cache;
# what a rebuild leaves untagged (the previous build stage and images) is then pruned, else
# every source change would keep a few GB more.
BUILD_CACHE   ?= localhost/modeld-build
image: build
	@scripts/image-base $(IMAGE_BASE)
	@$(PODMAN_BUILD) --target build -t $(BUILD_CACHE):latest .
	@$(PODMAN_BUILD) --target runtime -t $(IMAGE) .
	@$(PODMAN_BUILD) --target demo -t $(DEMO_IMAGE) .
	@$(PODMAN_BUILD) --target redis -t $(REDIS_IMAGE) .
	@$(PODMAN_BUILD) --target rabbitmq -t $(RABBITMQ_IMAGE) .
	@$(PODMAN) image prune --force > /dev/null

# The image as users run it (tests/image): every backend through the client, the user, a
# read-only root, the healthcheck, SIGTERM, bad set-ups; and compose.yaml's stack.
image-test: image image-no-tensorflow models
	@$(PY) -m pytest tests/image -q

image-no-tensorflow: build
	@scripts/image-base $(IMAGE_BASE)
	@$(PODMAN_BUILD) --target build --build-arg WITH_TENSORFLOW=OFF \
	  -t $(BUILD_CACHE):latest-no-tensorflow .
	@$(PODMAN_BUILD) --target runtime --build-arg WITH_TENSORFLOW=OFF -t $(IMAGE_NO_TF) .
	@$(PODMAN) image prune --force > /dev/null

# The modeld Python package (python/): its generated messages, installed editable in the venv.
PY_PROTOS := python/src/modeld/_proto/grpc_service_pb2.py
python: $(PY_PROTOS) .venv/.modeld-editable
# TensorFlow Serving's model status, which the client asks for (modeld.Client.model_status).
PY_TF_PROTOS := proto/tensorflow/error_codes.proto proto/tensorflow_serving/model.proto \
                proto/tensorflow_serving/get_model_status.proto
$(PY_PROTOS): $(PROTOS) $(PY_TF_PROTOS) python/generate_protos.py
	@$(PY) python/generate_protos.py
.venv/.modeld-editable: python/pyproject.toml
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e python
	@touch $@

# Python messages and stubs for the tests, generated from the same .proto files.
$(BUILD_DIR)/python/.stamp: $(PROTOS)
	@mkdir -p $(BUILD_DIR)/python
	@$(PY) -m grpc_tools.protoc -Iproto --python_out=$(BUILD_DIR)/python \
	  --grpc_python_out=$(BUILD_DIR)/python $(PROTOS)
	@touch $@

# The example repository, written by the venv's torch (the release modeld links; nothing is
# downloaded). The stamp also follows the requirements, so a new torch writes the models anew;
# setup first, for the venv.
models: $(MODELS)/.stamp
$(MODELS)/.stamp: examples/generate_models.py scripts/requirements.txt scripts/requirements-nodeps.txt | setup
	@echo "generating the example models in $(MODELS)"
	@$(PY) examples/generate_models.py --out $(MODELS)
	@touch $@

# modeld and the Django demo site (examples/django_demo) under Gunicorn; prints the URLs.
# make run AMQP=1 also starts a private RabbitMQ node that modeld consumes.
run: build models
	@MODELS=$(MODELS) GRPC_ADDRESS=$(GRPC_ADDRESS) HTTP_ADDRESS=$(HTTP_ADDRESS) \
	  DEMO_ADDRESS=$(DEMO_ADDRESS) BUILD_DIR=$(BUILD_DIR) AMQP=$(AMQP) scripts/run

# Every functional test: the C++ unit tests, the end-to-end suite, the deployment files, the
# Python client, the Django app, the demo site in Chromium, the wheel, and the images.
test: build models
	@$(MAKE) --no-print-directory unit-test integration-test python-test image-test

# make test, then the same tests under ASan + UBSan and a short fuzzing pass: what CI runs.
check: test
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

unit-test:
	@cd $(BUILD_DIR) && ctest -j2 --output-on-failure

# pytest-xdist runs test files in parallel, one worker per core (each test's servers listen on
# ports of their own; a file's tests share its module fixtures on one worker).
PYTEST_PARALLEL := -n auto --dist loadfile

integration-test:
	@$(PY) -m pytest tests/integration -q $(PYTEST_PARALLEL)
	@$(PY) -m pytest tests/deploy -q

# The Python package: the client against the real server (pytest), the Django app and the
# demo site (Django's own test runner).
python-test:
	@$(PY) -m pytest python/tests/client -q $(PYTEST_PARALLEL)
	@$(PY) python/tests/django/runtests.py
	@cd examples/django_demo && ../../$(PY) manage.py test
	@$(MAKE) --no-print-directory wheel-test

# The package as users install it: a wheel built from python/ and proto/ alone (no make build
# first), installed into a fresh venv with its declared dependencies, calling a real modeld.
wheel-test:
	@$(PY) -m pytest tests/packaging -q

# The unit tests and the end-to-end suite against modeld built with ASan + UBSan, or TSan
# (tests/sanitizers/run). The normal build provides the suite's Python stubs.
test-asan: build models
	@$(call ASAN_CONFIGURE,$(ASAN_BUILD_DIR))
	@cmake --build $(ASAN_BUILD_DIR)
	@tests/sanitizers/run $(ASAN_BUILD_DIR) address

# TSan with clang: GCC 12's TSan corrupts Debian protobuf's map fields (a text-format
# config's `parameters` read back with 8 entries, or a SEGV), clang's does not.
test-tsan: build models
	@cmake -S . -B $(TSAN_BUILD_DIR) $(SANITIZED_CMAKE) -DCMAKE_CXX_COMPILER=clang++ \
	  -DMODELD_SANITIZE=thread > /dev/null
	@cmake --build $(TSAN_BUILD_DIR)
	@tests/sanitizers/run $(TSAN_BUILD_DIR) thread

# libFuzzer targets (tests/fuzz): replays every corpus and regression input, then fuzzes each
# target for FUZZ_SECONDS; any finding fails (its input is left in $(FUZZ_BUILD_DIR)/findings).
fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS)

fuzz-build: setup
	@$(call ASAN_CONFIGURE,$(FUZZ_BUILD_DIR))
	@cmake --build $(FUZZ_BUILD_DIR) --target fuzz

# modeld against its baselines (bench/README.md): bench/results/<date>*.md, .json and PNG plots.
bench: build models
	@$(PY) bench/run.py $(BENCH_ARGS)
	@$(PY) bench/redis_bench.py
	@$(PY) bench/amqp_bench.py --out bench/results/$$(date +%F)-amqp.md
	@$(PY) bench/tf_bench.py
	@$(PY) bench/train_bench.py
	@$(PY) bench/demo_memory.py --out bench/results/$$(date +%F)-demo-memory.md
	@$(PY) bench/memory_burst.py --out bench/results/$$(date +%F)-memory-burst.md
	@$(PY) bench/stalled_calls.py --out bench/results/$$(date +%F)-stalled-calls.md
	@$(PY) bench/omp_wait.py --out bench/results/$$(date +%F)-omp-wait.md
	@$(PY) bench/pytorch_bench.py --out bench/results/$$(date +%F)-pytorch.md
	@$(PY) bench/overload.py --out bench/results/$$(date +%F)-overload.md
	@$(PY) bench/threads_instances.py --out bench/results/$$(date +%F)-threads-instances.md
	@$(PY) bench/onnx_bench.py --out bench/results/$$(date +%F)-onnx.md
	@$(PY) bench/celery_bench.py --out bench/results/$$(date +%F)-celery.md
	@$(PY) bench/memory_budget_bench.py --out bench/results/$$(date +%F)-memory-budget.md

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) $(TSAN_BUILD_DIR) $(FUZZ_BUILD_DIR) build-fuzz $(MODELS)
