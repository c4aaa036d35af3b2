# UringAIO: build, install, benchmark and test.
#   make bench     installs what is missing, builds, runs `uaio bench` (the main job)
#   make test      installs what is missing, runs every test (what .ci/run runs)
#   make install   PREFIX=/usr/local: bin/uaio, lib/libuaio.so, include/uaio.h and uaio_ops.h, lib/pkgconfig/uaio.pc
# SwiftPM cannot give an executable the name of a library product, so the CLI is built as
# `uaio-cli` and installed as `uaio`.
PREFIX ?= $(CURDIR)/stage
CONFIG ?= release
VERSION := 0.1.0
SWIFT ?= swift
BIN := $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
APT_PACKAGES := liburing-dev libaio-dev pkg-config fio manpages-dev python3

.PHONY: deps build install bench test test-swift test-compat test-cli clean

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
		else sudo apt-get update -q && sudo apt-get install -y -q $$missing; fi; \
	fi

build: deps
	$(SWIFT) build -c $(CONFIG) --product uaio
	$(SWIFT) build -c $(CONFIG) --product uaio-cli

install: build
	install -d $(PREFIX)/bin $(PREFIX)/lib/pkgconfig $(PREFIX)/include
	install -m 755 $(BIN)/uaio-cli $(PREFIX)/bin/uaio
	install -m 755 $(BIN)/libuaio.so $(PREFIX)/lib/libuaio.so
	install -m 644 compat/include/uaio.h compat/include/uaio_ops.h $(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' compat/uaio.pc.in > $(PREFIX)/lib/pkgconfig/uaio.pc
	gcc -O2 -Wall -o $(PREFIX)/bin/uaio-no-uring compat/tools/no-uring.c
	gcc -O2 -Wall -o $(PREFIX)/bin/uaio-ring-probe compat/tools/ring-probe.c

bench: install
	$(PREFIX)/bin/uaio bench

test: install test-swift test-compat test-cli

test-cli: install
	Tests/cli/run.sh $(PREFIX)

# The Swift tests run as they are, then again with io_uring blocked by a seccomp filter.
test-swift: install
	$(SWIFT) test
	$(PREFIX)/bin/uaio-no-uring $(SWIFT) test --skip-build

# Every program runs linked and preloaded: with the default settings (the ring where this
# kernel allows it), with UAIO_BACKEND=pool, with every read queued (no inline attempt), and
# with io_uring blocked by a seccomp filter as Docker blocks it.
# Whether the ring is expected comes from the kernel (uaio-ring-probe), not from the library's
# own probe: a library that wrongly falls back to its pool fails routing.c instead of skipping.
RING = $(shell $(PREFIX)/bin/uaio-ring-probe >/dev/null && echo 1 || echo 0)
test-compat: install
	@echo "io_uring for this process, says the kernel: $$($(PREFIX)/bin/uaio-ring-probe)"
	compat/tests/check-exports.sh $(PREFIX)/lib/libuaio.so
	UAIO_EXPECT_RING=$(RING) compat/tests/run.sh $(PREFIX)/lib
	UAIO_BACKEND=pool compat/tests/run.sh $(PREFIX)/lib
	UAIO_TRY_INLINE=0 UAIO_EXPECT_RING=$(RING) compat/tests/run.sh $(PREFIX)/lib
	UAIO_EXPECT_RING=0 $(PREFIX)/bin/uaio-no-uring compat/tests/run.sh $(PREFIX)/lib
	# Cancellation without the signal (as when the application owns it): poll and an eventfd.
	UAIO_BACKEND=pool UAIO_CANCEL_SIGNAL=none compat/tests/run.sh $(PREFIX)/lib \
		compat/tests/aio_cancel.c compat/tests/cancel_large.c compat/tests/cancel_race.c compat/tests/close_inflight.c \
		compat/tests/exit_blocked.c compat/tests/limits.c compat/tests/order_stream.c

clean:
	rm -rf .build stage
