# The two commands a newcomer needs: `make run` and `make check`.
BUILD ?= build
CHECK_BUILD ?= build-check
RUN_DIR ?= var
JOBS ?= $(shell nproc)

.PHONY: all run check deps build clean

all: build

deps:
	@./scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Starts ternd in the foreground on loopback ports 2000 + standard port,
# everything under ./var, with a demo user.
run: build
	@./scripts/run.sh $(BUILD) $(RUN_DIR)

# Every unit and integration test, built with ASan and UBSan.
check:
	@./scripts/deps.sh all
	@cmake -S . -B $(CHECK_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build $(CHECK_BUILD) -j $(JOBS)
	@cd $(CHECK_BUILD) && ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(CHECK_BUILD)
