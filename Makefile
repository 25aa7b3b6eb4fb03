# Thin wrapper over scripts/bootstrap + CMake presets. See README.md.
.PHONY: all bootstrap build test test-asan bench clean

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

bench: build
	@build/bin/rift-bench sim --json

clean:
	rm -rf build build-asan
