# Moonbeam — build, test, run. On a fresh Debian machine: `make run`, `make test`.
#
#   make            the moonbeam command, build/libmoonbeam.a and build/libmoonbeam.so
#   make deps       install the Debian packages that are missing (as root)
#   make run        deps, build, run the demo
#   make test       deps, build, C unit tests and busted specs; ends "N passed, N failed"
#   make asan/tsan  the same suite under AddressSanitizer+UBSan / ThreadSanitizer
#   make valgrind   the C tests under valgrind (memcheck, leaks included)
#   make bench      Moonbeam against BEAM on the workloads of tests/bench/, one table
#   make install    the command, both libraries, moonbeam.h and moonbeam.pc under PREFIX
#   make uninstall  removes what install put there
#   make clean
#
# Variables: B (build directory), SAN (sanitizer flags), SPECS (spec files to run);
# for bench: BENCH (workloads, e.g. ring,spawn), RUNS (5), THREADS (2), BUDGET (60 s a
# workload may take before it stops repeating), TIMEOUT (600 s per run), MEMLIMIT_MB
# (16384, address space of one run);
# for install: PREFIX (/usr/local), BINDIR, LIBDIR, INCLUDEDIR, PKGCONFIGDIR (derived from
# PREFIX), DESTDIR (a staging directory put in front of every installed path).

CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config
B ?= build
SAN ?=
SPECS ?= $(wildcard tests/*_spec.lua)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=
BENCH ?=
RUNS ?= 5
THREADS ?= 2
BUDGET ?= 60
TIMEOUT ?= 600
MEMLIMIT_MB ?= 16384

DEBS := gcc make pkg-config liblua5.4-dev lua5.4 lua-lpeg libreadline-dev lua-busted \
        lua-filesystem lua-term lua-system tmux

LUA_CFLAGS = $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS = $(shell $(PKG_CONFIG) --libs lua5.4 2>/dev/null || echo -llua5.4)

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread -fPIC -Wall -Wextra $(LUA_CFLAGS) $(CFLAGS) $(SAN)
LIB_CFLAGS = $(ALL_CFLAGS) -DMB_BUILDING -fvisibility=hidden
LIBS = $(LUA_LIBS) -lm -ldl -pthread

LIB_SRC := $(filter-out interp/main.c interp/mkembed.c,$(wildcard interp/*.c))
LIB_OBJ := $(LIB_SRC:interp/%.c=$(B)/%.o) $(B)/embed.o
HDRS := $(wildcard interp/*.h repl/*.h)

# Lua modules compiled into the binary: lualib/x.lua and behaviours/x.lua as "x",
# repl/x.lua as "moonbeam.x".
LUA_MODS := $(wildcard lualib/*.lua behaviours/*.lua repl/*.lua)
embed_name = $(if $(filter repl/%,$1),moonbeam.)$(basename $(notdir $1))
EMBED_ARGS := $(foreach f,$(LUA_MODS),$(call embed_name,$f)=$f)

C_TESTS := $(patsubst tests/c/%.c,$(B)/tests/%,$(wildcard tests/c/test_*.c))

# The shared library is libmoonbeam.so.VERSION, with soname libmoonbeam.so.MAJOR and the
# usual two symlinks; VERSION is MB_VERSION of the public header.
VERSION := $(shell sed -n 's/^.define MB_VERSION "\(.*\)"/\1/p' interp/moonbeam.h)
SONAME := libmoonbeam.so.$(firstword $(subst ., ,$(VERSION)))
SOFILE := libmoonbeam.so.$(VERSION)

.PHONY: all deps run test asan tsan valgrind bench clean check-c install uninstall

all: moonbeam $(B)/libmoonbeam.a $(B)/libmoonbeam.so

$(B) $(B)/tests:
	@mkdir -p $@

$(B)/mkembed: interp/mkembed.c | $(B)
	$(CC) -O2 -o $@ $<

$(B)/embed.c: $(LUA_MODS) $(B)/mkembed
	$(B)/mkembed $@ $(EMBED_ARGS)

$(B)/embed.o: $(B)/embed.c interp/embed.h
	$(CC) $(LIB_CFLAGS) -iquote interp -c -o $@ $<

$(B)/%.o: interp/%.c $(HDRS) | $(B)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

$(B)/main.o: interp/main.c $(HDRS) | $(B)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/line.o: repl/line.c $(HDRS) | $(B)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The archive hosts link is one relocatable object whose internal symbols are made local,
# so that only mb_* can clash with a host's own names. The C tests that reach inside the
# runtime link the plain objects (libmoonbeam-internal.a).
$(B)/libmoonbeam.o: $(LIB_OBJ)
	$(LD) -r -o $@ $^ && objcopy --localize-hidden $@

$(B)/libmoonbeam.a: $(B)/libmoonbeam.o
	rm -f $@ && ar rcs $@ $^

$(B)/libmoonbeam-internal.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/$(SOFILE): $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIBS)

$(B)/$(SONAME): $(B)/$(SOFILE)
	ln -sfn $(SOFILE) $@

$(B)/libmoonbeam.so: $(B)/$(SONAME)
	ln -sfn $(SONAME) $@

$(B)/moonbeam: $(B)/main.o $(B)/line.o $(B)/libmoonbeam.a
	$(CC) $(ALL_CFLAGS) -o $@ $(B)/main.o $(B)/line.o $(B)/libmoonbeam.a $(LIBS) -lreadline

moonbeam: $(B)/moonbeam
	cp $< $@.tmp && mv -f $@.tmp $@

$(B)/tests/%: tests/c/%.c tests/c/test.h $(B)/libmoonbeam-internal.a | $(B)/tests
	$(CC) $(ALL_CFLAGS) -iquote interp -o $@ $< $(B)/libmoonbeam-internal.a $(LIBS)

# test_embed uses nothing but moonbeam.h: it links what hosts link.
$(B)/tests/test_embed: tests/c/test_embed.c tests/c/test.h $(B)/libmoonbeam.a | $(B)/tests
	$(CC) $(ALL_CFLAGS) -iquote interp -o $@ $< $(B)/libmoonbeam.a $(LIBS)

deps:
	@missing=""; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run 'make deps' as root)"; exit 1; \
	  fi; \
	fi

run: deps
	@$(MAKE) --no-print-directory all
	./moonbeam examples/kv/main.lua

check-c: $(C_TESTS)

test: deps
	@$(MAKE) --no-print-directory all check-c
	@sh tests/run.sh ./moonbeam "$(C_TESTS)" "$(SPECS)"

asan: deps
	@$(MAKE) --no-print-directory B=build-asan \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/moonbeam check-c
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  sh tests/run.sh build-asan/moonbeam "$(patsubst $(B)/%,build-asan/%,$(C_TESTS))" "$(SPECS)"

tsan: deps
	@$(MAKE) --no-print-directory B=build-tsan SAN="-fsanitize=thread" \
	  build-tsan/moonbeam check-c
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  sh tests/run.sh build-tsan/moonbeam "$(patsubst $(B)/%,build-tsan/%,$(C_TESTS))" "$(SPECS)"

# (valgrind runs one thread at a time: fewer items for the mailbox's many-producer tests)
valgrind: check-c
	@for t in $(C_TESTS); do \
	  MBOX_TEST_ITEMS=5000 valgrind -q --fair-sched=yes --error-exitcode=9 \
	    --leak-check=full --show-leak-kinds=all \
	    --errors-for-leak-kinds=all $$t >$$t.valgrind 2>&1; rc=$$?; \
	  printf '%-40s %s\n' "$$(basename $$t)" "$$(tail -n 1 $$t.valgrind)"; \
	  if [ $$rc -ne 0 ]; then sed 's/^/    /' $$t.valgrind; exit 1; fi; \
	done

# The Erlang side is compiled only where erlc exists; without it the harness runs the
# Moonbeam side alone and says so.
ERLC := $(shell command -v erlc 2>/dev/null)
BENCH_BEAMS := $(patsubst tests/bench/erl/%.erl,$(B)/bench/erl/%.beam,$(wildcard tests/bench/erl/*.erl))

$(B)/bench $(B)/bench/erl:
	@mkdir -p $@

$(B)/bench/erl/%.beam: tests/bench/erl/%.erl | $(B)/bench/erl
	erlc -o $(B)/bench/erl $<

$(B)/bench/embed: tests/bench/embed.c interp/moonbeam.h $(B)/libmoonbeam.a | $(B)/bench
	$(CC) $(ALL_CFLAGS) -iquote interp -o $@ $< $(B)/libmoonbeam.a $(LIBS)

bench: moonbeam $(B)/bench/embed $(if $(ERLC),$(BENCH_BEAMS)) | $(B)/bench
	@export ERL_CRASH_DUMP="$(B)/bench/erl_crash.dump"; \
	BENCH="$(BENCH)" RUNS="$(RUNS)" THREADS="$(THREADS)" BUDGET="$(BUDGET)" \
	  TIMEOUT="$(TIMEOUT)" MEMLIMIT_MB="$(MEMLIMIT_MB)" B="$(B)" ./moonbeam -S 1 tests/bench/run.lua
	@case ",$(BENCH)," in ,,|*,http,*) echo; echo "HTTP and echo over loopback (tests/bench/http.sh):"; \
	  ERL_CRASH_DUMP="$(B)/bench/erl_crash.dump" bash tests/bench/http.sh;; esac

# Where install puts things, each below $(DESTDIR). moonbeam.pc names PREFIX, never
# DESTDIR, and its directories relative to ${prefix} where they lie under PREFIX.
I_BIN = $(DESTDIR)$(BINDIR)
I_LIB = $(DESTDIR)$(LIBDIR)
I_INC = $(DESTDIR)$(INCLUDEDIR)
I_PC = $(DESTDIR)$(PKGCONFIGDIR)
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$1)

install: all
	install -d "$(I_BIN)" "$(I_LIB)" "$(I_INC)" "$(I_PC)"
	install -m 755 $(B)/moonbeam "$(I_BIN)/moonbeam"
	install -m 644 $(B)/libmoonbeam.a "$(I_LIB)/libmoonbeam.a"
	install -m 755 $(B)/$(SOFILE) "$(I_LIB)/$(SOFILE)"
	ln -sfn $(SOFILE) "$(I_LIB)/$(SONAME)"
	ln -sfn $(SONAME) "$(I_LIB)/libmoonbeam.so"
	install -m 644 interp/moonbeam.h "$(I_INC)/moonbeam.h"
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(call pc_dir,$(LIBDIR))' \
	  'includedir=$(call pc_dir,$(INCLUDEDIR))' '' 'Name: moonbeam' \
	  'Description: Erlang-style processes for Lua 5.4' 'Version: $(VERSION)' \
	  'Requires: lua5.4' 'Libs: -L$${libdir} -lmoonbeam' 'Libs.private: -lm -ldl -pthread' \
	  'Cflags: -I$${includedir}' >"$(I_PC)/moonbeam.pc"

uninstall:
	rm -f "$(I_BIN)/moonbeam" "$(I_LIB)/libmoonbeam.a" "$(I_LIB)/$(SOFILE)" \
	  "$(I_LIB)/$(SONAME)" "$(I_LIB)/libmoonbeam.so" "$(I_INC)/moonbeam.h" "$(I_PC)/moonbeam.pc"

clean:
	rm -rf build build-asan build-tsan moonbeam
