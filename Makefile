# Two commands do all on a fresh Debian bookworm machine: `make run` and `make test`.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Every Debian package the build, the node and the tests need.
DEPS := cmake ninja-build g++ ccache pkg-config python3 curl openssl \
	libcaf-dev libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-system1.81-dev \
	libsoci-dev libpq-dev libsqlite3-dev libssl-dev \
	libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libgoogle-perftools-dev \
	libgtest-dev libgmock-dev googletest libbenchmark-dev \
	postgresql-15 postgresql-client-15 python3-jwcrypto \
	clang libclang-rt-14-dev \
	wrk nginx-light

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: deps build run cluster test clean fuzz fuzz-smoke bench bench-median

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./deploy/run-local.sh $(BUILD)/emporium

# A PostgreSQL of its own and NODES nodes on loopback (HTTP 8081.., cluster 7001..).
NODES ?= 3
cluster: build
	./deploy/local-cluster $(BUILD)/emporium $(NODES)

test: build
	./tests/run-all.sh $(BUILD)
	$(MAKE) fuzz FUZZ_SECONDS=20

# libFuzzer targets (clang 14, ASan + UBSan), a CMake project of their own: each runs FUZZ_SECONDS.
fuzz: deps
	cmake -S tests/fuzz -B $(FUZZ_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

# Benchmarks against the machine's own ceilings (nginx, pgbench); they build into BENCH_BUILD
# (/tmp/build-bench-suite). `make bench-stock` (orders-pg, orders-sqlite, hot, micro) runs one.
bench: deps
	./bench/run.sh

# Each scenario REPEATS times (3), then the median of each figure: `make bench-median
# SCENARIOS=orders-pg` (all scenarios when SCENARIOS is empty).
REPEATS ?= 3
SCENARIOS ?=
bench-median: deps
	./bench/repeat.sh $(REPEATS) $(SCENARIOS)

bench-%: deps
	./bench/run.sh $*

clean:
	rm -rf $(BUILD)
