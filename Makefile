# Moonbeam — build, test, run. On a fresh Debian machine: `make run`, `make test`.
#
#   make            the moonbeam command, build/libmoonbeam.a and build/libmoonbeam.so
#   make deps       install the Debian packages that are missing (as root)
#   make run        deps, build, run the demo
#   make test       deps, build, C unit tests and busted specs; ends "N passed, N failed"
#   make asan/tsan  the same suite under AddressSanitizer+UBSan / ThreadSanitizer
#   make clean
#
# Variables: B (build directory), SAN (sanitizer flags), SPECS (spec files to run).

CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config
B ?= build
SAN ?=
SPECS ?= $(wildcard tests/*_spec.lua)

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

.PHONY: all deps run test asan tsan clean check-c

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

$(B)/libmoonbeam.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/libmoonbeam.so: $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libmoonbeam.so.0 -o $@ $^ $(LIBS)

$(B)/moonbeam: $(B)/main.o $(B)/line.o $(B)/libmoonbeam.a
	$(CC) $(ALL_CFLAGS) -o $@ $(B)/main.o $(B)/line.o $(B)/libmoonbeam.a $(LIBS) -lreadline

moonbeam: $(B)/moonbeam
	cp $< $@.tmp && mv -f $@.tmp $@

$(B)/tests/%: tests/c/%.c tests/c/test.h $(B)/libmoonbeam.a | $(B)/tests
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

clean:
	rm -rf build build-asan build-tsan moonbeam
