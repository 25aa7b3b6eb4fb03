# Thin wrapper over scripts/bootstrap + CMake presets. See README.md.
.PHONY: all bootstrap build test test-asan bench demo clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset default >/dev/null
	@cmake --build --preset default

test: build
	@ctest --preset default
	@$(MAKE) --no-print-directory test-asan

# The core tests again under ASan + UBSan (fewer simulator seeds: it is ~5x slower).
test-asan: bootstrap
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan
	@ctest --preset asan

# A partial-connectivity scenario (r1 and r2 cannot talk; both reach r3) on the
# real dataplane: namespaces, veths, rift-stackd on DPDK, rift-replica processes.
DEMO_SCENARIO ?= scenarios/leader-churning.json
demo: build
	@build/bin/rift run $(DEMO_SCENARIO) --backend dpdk --out runs/demo; rc=$$?; \
	  echo "report: $(CURDIR)/runs/demo/report.html (run.json, history.jsonl, junit.xml beside it)"; exit $$rc

bench: build
	@build/bin/rift-bench sim --json

clean:
	rm -rf build build-asan
