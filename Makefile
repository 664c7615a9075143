# Makefile — builds build/libkie.a, build/kie (CLI) and build/kie-worker; runs the tests.
#   make            release build (-O2)
#   make test       unit tests (cmocka) + system tests (pytest), C built with ASan+UBSan
#   make test TEST_PREFIX=valgrind   unit tests under valgrind (plain build)
#   make WERROR=0   do not turn warnings into errors;  V=1 shows full commands
#   make SANITIZER=address,undefined  sanitized build into build/san/
#   make fuzz       libFuzzer targets (clang) into build/fuzz/, each run FUZZ_SECONDS (300)
#   make fuzz-smoke each target 8 s, as part of make test (fuzz/README.md)
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
WERROR  ?= 1
PYTHON  ?= /usr/bin/python3
PKGS    := hiredis libcurl libcjson libmicrohttpd openssl

ifeq ($(SANITIZER),)
  B      := build
  OPT    := -O2 -g
  SANFL  :=
else
  B      := build/san
  OPT    := -O1 -g -fno-omit-frame-pointer
  SANFL  := -fsanitize=$(SANITIZER) -fno-sanitize-recover=undefined
endif

WARN := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wshadow -Wpointer-arith \
        -Wno-unused-parameter -Wvla -Wno-format-truncation
# (snprintf truncation is deliberate everywhere: buffers are caps, not guesses)
ifeq ($(WERROR),1)
  WARN += -Werror
endif

CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFL) -MMD -MP -pthread \
           -Icommon -I$(B)/gen $(shell pkg-config --cflags $(PKGS))
LDFLAGS += $(SANFL) -pthread
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lm

ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2);
endif

LIB_SRC    := $(wildcard common/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/lua_scripts.o
# the Redis scripts, one file per atomic step, embedded by scripts/embed-lua.sh
LUA_SRC    := $(sort $(wildcard common/lua/*.lua))
WORKER_SRC := $(filter-out worker/cli.c,$(wildcard worker/*.c))
WORKER_OBJ := $(WORKER_SRC:%.c=$(B)/%.o)
CLI_OBJ    := $(B)/worker/cli.o
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test unit system clean install demo fuzz fuzz-smoke fuzz-build fuzz-known
all: $(B)/libkie.a $(B)/kie $(B)/kie-worker

deps:
	./scripts/install-deps.sh

# every object may include lua_scripts.h: it exists before any is compiled (-MMD then
# records who does); a changed .lua regenerates it and rebuilds those
# (explicit grouped targets, not a pattern rule: -MP's empty rule for a missing header
# would otherwise count as making it)
$(B)/gen/lua_scripts.c $(B)/gen/lua_scripts.h &: scripts/embed-lua.sh $(LUA_SRC)
	$(call say,GEN,$(B)/gen/lua_scripts.c)./scripts/embed-lua.sh $(B)/gen $(LUA_SRC)

$(B)/gen/lua_scripts.o: $(B)/gen/lua_scripts.c
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/%.o: %.c | $(B)/gen/lua_scripts.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libkie.a: $(LIB_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(B)/kie: $(CLI_OBJ) $(B)/libkie.a
	$(call say,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/kie-worker: $(WORKER_OBJ) $(B)/libkie.a
	$(call say,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libkie.a | $(B)/gen/lua_scripts.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libkie.a $(LDFLAGS) $(LDLIBS) -lcmocka

# `make test`: installs what is missing, builds sanitized, runs unit tests, an 8 s fuzz run
# of each fuzz target, then system tests.
test: deps
	$(MAKE) --no-print-directory SANITIZER=address,undefined unit-run
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory SANITIZER=address,undefined system-run

unit: ; $(MAKE) --no-print-directory SANITIZER=address,undefined unit-run
system: ; $(MAKE) --no-print-directory SANITIZER=address,undefined system-run

.PHONY: unit-run system-run
unit-run: $(UNIT_BIN)
	@pass=0; fail=0; cases=0; for t in $(UNIT_BIN); do \
	  out=$$($(TEST_PREFIX) $$t 2>&1); rc=$$?; printf '%s\n' "$$out"; \
	  n=$$(printf '%s\n' "$$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p'); \
	  cases=$$((cases + $${n:-0})); \
	  if [ $$rc -eq 0 ]; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "unit tests: $$cases passed in $$pass programs; $$fail program(s) failed"; \
	test $$fail -eq 0

system-run: all
	KIE_BIN_DIR=$(CURDIR)/$(B) $(PYTHON) -m pytest -q tests/system $(PYTEST_ARGS)

# Fuzzing: clang with libFuzzer, ASan and UBSan; the library compiled again into build/fuzz/
# (apart from the gcc builds). A violated invariant aborts and leaves its input in
# build/fuzz/artifacts/. FUZZ_KNOWN_BUGS=1 skips the invariants fuzz/README.md lists as known.
FUZZ_CC         ?= clang
FUZZ_SECONDS    ?= 300
FUZZ_KNOWN_BUGS ?= 1
FB              := build/fuzz
FUZZ_SAN        := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS     := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(WARN) \
                   -Wno-unknown-warning-option -MMD -MP -pthread -Icommon -I$(FB)/gen -Ifuzz \
                   $(shell pkg-config --cflags $(PKGS)) $(FUZZ_SAN)
FUZZ_TARGETS    := $(notdir $(basename $(wildcard fuzz/fuzz_*.c)))
FUZZ_BIN        := $(FUZZ_TARGETS:%=$(FB)/%)
FUZZ_LIB_OBJ    := $(LIB_SRC:%.c=$(FB)/%.o) $(FB)/gen/lua_scripts.o
# -max_len per target: descriptors up to the 64 KiB default cap; the URL target past the
# callback URL's 8 KiB buffer
FUZZ_MAXLEN_fuzz_descriptor     := 65536
FUZZ_MAXLEN_fuzz_json_strict    := 8192
FUZZ_MAXLEN_fuzz_kie_response   := 8192
FUZZ_MAXLEN_fuzz_metadata_merge := 4096
FUZZ_MAXLEN_fuzz_url            := 12000

$(FB)/gen/lua_scripts.c $(FB)/gen/lua_scripts.h &: scripts/embed-lua.sh $(LUA_SRC)
	$(call say,GEN,$(FB)/gen/lua_scripts.c)./scripts/embed-lua.sh $(FB)/gen $(LUA_SRC)

$(FB)/gen/lua_scripts.o: $(FB)/gen/lua_scripts.c
	$(call say,CLANG,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FB)/common/%.o: common/%.c | $(FB)/gen/lua_scripts.h
	@mkdir -p $(dir $@)
	$(call say,CLANG,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FB)/fuzz/%.o: fuzz/%.c | $(FB)/gen/lua_scripts.h
	@mkdir -p $(dir $@)
	$(call say,CLANG,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FB)/libkie.a: $(FUZZ_LIB_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(FB)/fuzz_%: $(FB)/fuzz/fuzz_%.o $(FB)/fuzz/invariant.o $(FB)/libkie.a
	$(call say,LINK,$@)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BIN)
.SECONDARY: $(FUZZ_TARGETS:%=$(FB)/fuzz/%.o) $(FB)/fuzz/invariant.o

# every target runs even when one fails; the make fails if any did
fuzz-run-all = @fail=0; $(foreach t,$(FUZZ_TARGETS),FUZZ_KNOWN_BUGS=$(FUZZ_KNOWN_BUGS) \
	./fuzz/run.sh $(t) $(1) $(FUZZ_MAXLEN_$(t)) || fail=1;) test $$fail -eq 0

fuzz: fuzz-build
	$(call fuzz-run-all,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-build
	$(call fuzz-run-all,8)

# the known bugs' reproducers (fuzz/known/): which still fail, which are fixed
fuzz-known: fuzz-build
	@./fuzz/replay-known.sh

demo: deps all
	./scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/kie $(B)/kie-worker $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
