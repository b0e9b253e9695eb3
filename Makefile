# Thin verbs over CMake, the venv and pytest. `make run` and `make test` set everything up.
BUILD_DIR ?= build
MODELS    ?= examples/models
PY        := .venv/bin/python
GRPC_ADDRESS ?= 127.0.0.1:8001
HTTP_ADDRESS ?= 127.0.0.1:8000
PROTOS    := $(wildcard proto/*/*.proto)
# ccache: paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR := $(CURDIR)

.PHONY: all setup build python run test unit-test integration-test models bench format clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(BUILD_DIR)
	@$(MAKE) --no-print-directory $(BUILD_DIR)/python/.stamp python

# The modeld Python package (python/): its generated messages, installed editable in the venv.
PY_PROTOS := python/src/modeld/_proto/grpc_service_pb2.py
python: $(PY_PROTOS) .venv/.modeld-editable
$(PY_PROTOS): $(PROTOS) python/generate_protos.py
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

# The example repository, written by Debian's torch (nothing is downloaded).
models: $(MODELS)/.stamp
$(MODELS)/.stamp: examples/generate_models.py
	@echo "generating the example models in $(MODELS)"
	@/usr/bin/python3 examples/generate_models.py --out $(MODELS)
	@touch $@

run: build models
	$(BUILD_DIR)/bin/modeld --model-repository=$(MODELS) --grpc-address=$(GRPC_ADDRESS) \
	  --http-address=$(HTTP_ADDRESS)

test: build models
	@$(MAKE) --no-print-directory unit-test integration-test

unit-test:
	@cd $(BUILD_DIR) && ctest -j2 --output-on-failure

integration-test:
	@$(PY) -m pytest tests/integration -q

# modeld against its baselines (bench/README.md): bench/results/<date>.md, .json and PNG plots.
bench: build models
	@$(PY) bench/run.py $(BENCH_ARGS)

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(MODELS)
