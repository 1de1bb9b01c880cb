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
PKGS = openssl inih libsystemd
CFLAGS ?= -O2 -g
BASE_CFLAGS = -std=c11 -Wall -Wextra -D_GNU_SOURCE -Isrc \
	$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

VERSION = 0.1.0

LIB_SRC = $(filter-out src/main.c,$(wildcard src/*.c))
HDRS = $(wildcard src/*.h)
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

all: mailwatch

mailwatch: build/main.o build/libmailwatch.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

build/libmailwatch.a: $(LIB_OBJ)
	ar rcs $@ $^

build/%.o: src/%.c $(HDRS) | build/.dir
	$(CC) $(BASE_CFLAGS) -DMAILWATCH_VERSION='"$(VERSION)"' $(CFLAGS) -c -o $@ $<

# The sanitizer build used by every test.
build/asan/libmailwatch.a: $(ASAN_OBJ)
	ar rcs $@ $^

build/asan/%.o: src/%.c $(HDRS) | build/.dir
	$(CC) $(BASE_CFLAGS) -DMAILWATCH_VERSION='"$(VERSION)"' $(SAN_FLAGS) -c -o $@ $<

build/asan/mailwatch: build/asan/main.o build/asan/libmailwatch.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LIBS)

build/asan/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) build/asan/libmailwatch.a
	$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN_FLAGS) -o $@ $< build/asan/libmailwatch.a $(LIBS)

build/tests/%: tests/lib/%.c build/libmailwatch.a | build/.dir
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libmailwatch.a $(LIBS)

build/bench/%: bench/%.c build/libmailwatch.a | build/.dir
	$(CC) $(BASE_CFLAGS) -O2 -g -o $@ $< build/libmailwatch.a $(LIBS)

build/.dir:
	mkdir -p build/asan build/tests build/bench build/fuzz
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

# libFuzzer targets, built with clang against the library sources.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -Isrc -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HDRS) | build/.dir
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(LIBS)

fuzz:
	scripts/deps.sh fuzz
	$(MAKE) $(FUZZ_BIN)
	tests/fuzz/run $(FUZZ_SECONDS)

install: mailwatch
	install -Dm755 mailwatch $(DESTDIR)$(BINDIR)/mailwatch
	install -Dm644 man/mailwatch.1 $(DESTDIR)$(MANDIR)/man1/mailwatch.1
	install -Dm644 man/mailwatch.ini.5 $(DESTDIR)$(MANDIR)/man5/mailwatch.ini.5
	install -Dm644 mailwatch.ini.example $(DESTDIR)$(DOCDIR)/mailwatch.ini.example
	install -Dm644 contrib/README.md $(DESTDIR)$(CONTRIBDIR)/README.md
	for f in contrib/mailwatch-*; do \
		install -Dm755 $$f $(DESTDIR)$(CONTRIBDIR)/$$(basename $$f) || exit 1; \
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
	for f in contrib/mailwatch-*; do \
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
