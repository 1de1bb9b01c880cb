# mailwatch — see README.md. Targets: all check demo fuzz bench soak install
# uninstall clean deps.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/mailwatch
CONTRIBDIR ?= $(PREFIX)/share/mailwatch/contrib
# The user manager looks in /usr/lib, /usr/local/lib and ~/.local/share
# (not ~/.local/lib): PREFIX=$HOME/.local gets share/systemd/user.
USERUNITDIR ?= $(if $(and $(HOME),$(filter $(HOME)/%,$(PREFIX))),$(PREFIX)/share,$(PREFIX)/lib)/systemd/user
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = openssl libsystemd
CFLAGS ?= -O2 -g
# WERROR=1 turns every warning into an error (CI builds with it).
WARNINGS = -Wall -Wextra $(if $(WERROR),-Werror)

# pkg-config runs once, when make reads this file. A failure stops make
# only when something is compiled or linked (BASE_CFLAGS and LIBS are
# expanded in recipes): make check, demo, bench, soak and fuzz install the
# missing packages first and then run make again. ("|| exit 1": make drops
# the output of a command that exits with 127, "not found".)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>&1 || exit 1)
PKG_STATUS := $(.SHELLSTATUS)
PKG_LIBS := $(if $(filter 0,$(PKG_STATUS)),$(shell $(PKG_CONFIG) --libs $(PKGS)))
pkg_ok = $(if $(filter 0,$(PKG_STATUS)),,$(error '$(PKG_CONFIG) --cflags \
	$(PKGS)' failed: $(PKG_CFLAGS). Install the build dependencies: \
	'make deps' as root, or see README.md))

BASE_CFLAGS = $(pkg_ok)-std=c11 $(WARNINGS) -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)
LIBS = $(pkg_ok)$(PKG_LIBS)
# Each compiler run also writes the headers it read to a .d file next to
# its output; make includes those at the end of this file.
DEPFLAGS = -MMD -MP
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

# Made on demand (order-only prerequisites of everything built there).
BUILD_DIRS = build/asan build/tests build/bench build/fuzz/obj

VERSION = 0.1.0

LIB_SRC = $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ = $(LIB_SRC:src/%.c=build/%.o)
ASAN_OBJ = $(LIB_SRC:src/%.c=build/asan/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=build/asan/%)
HELPER_SRC = $(wildcard tests/lib/*.c)
HELPER_BIN = $(HELPER_SRC:tests/lib/%.c=build/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=build/bench/%)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_OBJ = $(LIB_SRC:src/%.c=build/fuzz/obj/%.o)

all: mailwatch

mailwatch: build/main.o build/libmailwatch.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

build/libmailwatch.a: $(LIB_OBJ)
	ar rcs $@ $^

build/%.o: src/%.c | $(BUILD_DIRS)
	$(CC) $(BASE_CFLAGS) -DMAILWATCH_VERSION='"$(VERSION)"' $(CFLAGS) \
		$(DEPFLAGS) -c -o $@ $<

# The sanitizer build used by every test.
build/asan/libmailwatch.a: $(ASAN_OBJ)
	ar rcs $@ $^

build/asan/%.o: src/%.c | $(BUILD_DIRS)
	$(CC) $(BASE_CFLAGS) -DMAILWATCH_VERSION='"$(VERSION)"' $(SAN_FLAGS) \
		$(DEPFLAGS) -c -o $@ $<

build/asan/mailwatch: build/asan/main.o build/asan/libmailwatch.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LIBS)

build/asan/test_%: tests/unit/test_%.c build/asan/libmailwatch.a
	$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN_FLAGS) $(DEPFLAGS) -MF $@.d \
		-o $@ $< build/asan/libmailwatch.a $(LIBS)

build/tests/%: tests/lib/%.c build/libmailwatch.a | $(BUILD_DIRS)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(DEPFLAGS) -MF $@.d \
		-o $@ $< build/libmailwatch.a $(LIBS)

build/bench/%: bench/%.c build/libmailwatch.a | $(BUILD_DIRS)
	$(CC) $(BASE_CFLAGS) -O2 -g $(DEPFLAGS) -MF $@.d \
		-o $@ $< build/libmailwatch.a $(LIBS)

$(BUILD_DIRS):
	mkdir -p $@
	touch $@

deps:
	scripts/deps.sh build

check-deps:
	scripts/deps.sh check

check: check-deps
	$(MAKE) mailwatch build/asan/mailwatch $(UNIT_BIN) $(HELPER_BIN)
	tests/run

demo:
	scripts/deps.sh check
	$(MAKE) mailwatch $(HELPER_BIN)
	tests/demo.sh

bench:
	scripts/deps.sh check
	$(MAKE) mailwatch $(BENCH_BIN) $(HELPER_BIN)
	bench/run

soak:
	scripts/deps.sh check
	$(MAKE) build/asan/mailwatch $(HELPER_BIN)
	SOAK_SECONDS=$${SOAK_SECONDS:-180} tests/integration/soak.py

# libFuzzer targets, built with clang: the library with coverage
# instrumentation, each tests/fuzz/fuzz_*.c linked with libFuzzer's main.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = $(BASE_CFLAGS) -g -O1 -fno-sanitize-recover=undefined
build/fuzz/obj/%.o: src/%.c | $(BUILD_DIRS)
	clang $(FUZZ_CFLAGS) -DMAILWATCH_VERSION='"$(VERSION)"' \
		-fsanitize=fuzzer-no-link,address,undefined $(DEPFLAGS) \
		-c -o $@ $<

build/fuzz/libmailwatch.a: $(FUZZ_OBJ)
	ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libmailwatch.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $(DEPFLAGS) \
		-MF $@.d -o $@ $< build/fuzz/libmailwatch.a $(LIBS)

fuzz:
	scripts/deps.sh fuzz
	$(MAKE) $(FUZZ_BIN)
	tests/fuzz/run $(FUZZ_SECONDS)

install: mailwatch
	install -Dm755 mailwatch $(DESTDIR)$(BINDIR)/mailwatch
	install -Dm644 man/mailwatch.1 $(DESTDIR)$(MANDIR)/man1/mailwatch.1
	mkdir -p build
	sed -e 's|/usr/local/share/doc/mailwatch|$(DOCDIR)|g' \
		-e 's|/usr/local/share/mailwatch/contrib|$(CONTRIBDIR)|g' \
		man/mailwatch.ini.5 > build/mailwatch.ini.5
	install -Dm644 build/mailwatch.ini.5 $(DESTDIR)$(MANDIR)/man5/mailwatch.ini.5
	install -Dm644 mailwatch.ini.example $(DESTDIR)$(DOCDIR)/mailwatch.ini.example
	install -Dm644 contrib/README.md $(DESTDIR)$(CONTRIBDIR)/README.md
	for f in contrib/mailwatch-*; do \
		install -Dm755 $$f $(DESTDIR)$(CONTRIBDIR)/$$(basename $$f) || exit 1; \
	done
	for f in contrib/*.example; do \
		install -Dm644 $$f $(DESTDIR)$(CONTRIBDIR)/$$(basename $$f) || exit 1; \
	done
	for u in systemd/*.service.in; do \
		n=$$(basename $$u .in); \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u > build/$$n && \
		install -Dm644 build/$$n $(DESTDIR)$(USERUNITDIR)/$$n || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mailwatch \
		$(DESTDIR)$(MANDIR)/man1/mailwatch.1 \
		$(DESTDIR)$(MANDIR)/man5/mailwatch.ini.5 \
		$(DESTDIR)$(DOCDIR)/mailwatch.ini.example \
		$(DESTDIR)$(CONTRIBDIR)/README.md
	for f in contrib/mailwatch-* contrib/*.example; do \
		rm -f $(DESTDIR)$(CONTRIBDIR)/$$(basename $$f); \
	done
	for u in systemd/*.service.in; do \
		rm -f $(DESTDIR)$(USERUNITDIR)/$$(basename $$u .in); \
	done
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONTRIBDIR) \
		$(DESTDIR)$(PREFIX)/share/mailwatch

clean:
	rm -rf build mailwatch

.PHONY: all check check-deps deps demo bench soak fuzz install uninstall clean
.SECONDARY:

-include $(wildcard build/*.d build/*/*.d build/fuzz/obj/*.d)
