# UringAIO: build, install, benchmark and test.
#   make bench     installs what is missing, builds, runs `uaio bench` (the main job)
#   make test      installs what is missing, runs every test (what .ci/run runs)
#   make install   PREFIX=/usr/local: bin/uaio, lib/libuaio.so, include/uaio.h, lib/pkgconfig/uaio.pc
# SwiftPM cannot give an executable the name of a library product, so the CLI is built as
# `uaio-cli` and installed as `uaio`.
PREFIX ?= $(CURDIR)/stage
CONFIG ?= release
VERSION := 0.1.0
SWIFT ?= swift
BIN := $(shell $(SWIFT) build -c $(CONFIG) --show-bin-path 2>/dev/null)
APT_PACKAGES := liburing-dev libaio-dev pkg-config fio manpages-dev

.PHONY: deps build install bench test test-swift test-compat clean

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
	install -m 644 compat/include/uaio.h $(PREFIX)/include/uaio.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' compat/uaio.pc.in > $(PREFIX)/lib/pkgconfig/uaio.pc

bench: install
	$(PREFIX)/bin/uaio bench

test: install test-swift test-compat

test-swift: deps
	$(SWIFT) test

# Every program runs linked and preloaded, with the default settings and again with every
# read queued to the pool (no inline attempt).
test-compat: install
	compat/tests/check-exports.sh $(PREFIX)/lib/libuaio.so
	compat/tests/run.sh $(PREFIX)/lib
	UAIO_TRY_INLINE=0 compat/tests/run.sh $(PREFIX)/lib

clean:
	rm -rf .build stage
