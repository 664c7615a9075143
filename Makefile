# Makefile — builds build/libkie.a, build/kie (CLI, cli/) and build/kie-worker (worker/);
# runs the tests.
#   make            release build (-O2)
#   make test       unit tests (cmocka) + system tests (pytest), C built with ASan+UBSan
#   make check-long the system tests at KIE's real rates (minutes; not needed by CI)
#   make test TEST_PREFIX=valgrind   unit tests under valgrind (plain build)
#   make WERROR=0   do not turn warnings into errors;  V=1 shows full commands
#   make SANITIZER=address,undefined  sanitized build into build/san/
#   make fuzz       libFuzzer targets (clang) into build/fuzz/, each run FUZZ_SECONDS (300)
#   make fuzz-smoke each target 8 s, as part of make test (fuzz/README.md)
#   make bench      latency (issue 18), memory per finished job, and kie-worker against a
#                   BullMQ worker (medians of 3), release build (docs/performance.md);
#                   BENCH_JOBS=5000 for more jobs, BENCH_ARGS='--configs 4x2' for more options
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
WERROR  ?= 1
PYTHON  ?= /usr/bin/python3
PKGS    := hiredis hiredis_ssl libcurl libcjson libmicrohttpd openssl

# hiredis >= 1.0 with hiredis_ssl (TLS to Redis). Where the system's is older (Debian
# bookworm: 0.14.1), scripts/build-hiredis.sh builds Debian trixie's 1.2.0 as static
# libraries into build/deps/hiredis (run here when missing; `make clean` keeps it) and
# pkg-config is pointed there, for every build: release, build/san, unit tests, build/fuzz.
HIREDIS_PREFIX := $(CURDIR)/build/deps/hiredis
PKG_CONFIG     ?= pkg-config
ifeq ($(shell $(PKG_CONFIG) --exists 'hiredis >= 1.0' hiredis_ssl && echo y),)
  ifneq ($(filter-out clean distclean,$(or $(MAKECMDGOALS),all)),)
    ifeq ($(wildcard $(HIREDIS_PREFIX)/lib/pkgconfig/hiredis_ssl.pc),)
      $(info hiredis: the system's is older than 1.0 or lacks TLS: building 1.2.0 into build/deps)
      ifneq ($(shell ./scripts/build-hiredis.sh '$(HIREDIS_PREFIX)' >&2 || echo failed),)
        $(error scripts/build-hiredis.sh failed (see above); hiredis >= 1.0 with hiredis_ssl is needed)
      endif
    endif
  endif
  export PKG_CONFIG_PATH := $(HIREDIS_PREFIX)/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
  PKG_CONFIG := PKG_CONFIG_PATH='$(PKG_CONFIG_PATH)' $(PKG_CONFIG)
endif

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
           -Icommon -I$(B)/gen $(shell $(PKG_CONFIG) --cflags $(PKGS))
LDFLAGS += $(SANFL) -pthread
LDLIBS  += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm

ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2);
endif

LIB_SRC    := $(sort $(wildcard common/*/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/lua_scripts.o
# the Redis scripts, one file per atomic step beside the module that owns it
# (common/<subsystem>/lua/), embedded by scripts/embed-lua.sh
LUA_SRC    := $(sort $(wildcard common/*/lua/*.lua))
# functions several scripts share, inlined where a script says `--#include NAME.lua`
LUA_LIB    := $(sort $(wildcard common/*/lua/lib/*.lua))
WORKER_SRC := $(wildcard worker/*.c)
WORKER_OBJ := $(WORKER_SRC:%.c=$(B)/%.o) $(B)/gen/web_assets.o
CLI_SRC    := $(wildcard cli/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test check-long check-includes check-vendor unit system clean distclean install demo fuzz fuzz-smoke fuzz-build fuzz-known bench
all: $(B)/libkie.a $(B)/kie $(B)/kie-worker

deps:
	./scripts/install-deps.sh

# every object may include lua_scripts.h: it exists before any is compiled (-MMD then
# records who does); a changed .lua regenerates it and rebuilds those
# (explicit grouped targets, not a pattern rule: -MP's empty rule for a missing header
# would otherwise count as making it)
$(B)/gen/lua_scripts.c $(B)/gen/lua_scripts.h &: scripts/embed-lua.sh $(LUA_SRC) $(LUA_LIB)
	$(call say,GEN,$(B)/gen/lua_scripts.c)./scripts/embed-lua.sh $(B)/gen $(LUA_SRC)

$(B)/gen/lua_scripts.o: $(B)/gen/lua_scripts.c
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/%.o: %.c | $(B)/gen/lua_scripts.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

# the web page's files (worker/web/), embedded into kie-worker (scripts/embed.sh: sh + od);
# with the charting library uPlot, vendored in worker/web/vendor/ and pinned by SHA-256
# (scripts/fetch-uplot.sh; `make check-vendor`)
WEB_FILES := $(sort $(wildcard worker/web/*.html worker/web/*.js worker/web/*.css) \
	       $(wildcard worker/web/vendor/*.js worker/web/vendor/*.css))
$(B)/gen/web_assets.c: $(WEB_FILES) scripts/embed.sh
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)./scripts/embed.sh $(WEB_FILES) > $@.tmp && mv $@.tmp $@

$(B)/gen/%.o: $(B)/gen/%.c
	$(call say,CC,$<)$(CC) $(CFLAGS) -Iworker -c -o $@ $<

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
# of each fuzz target, then system tests. The builds and the fuzz runs use every core
# (JOBS), the system tests PYTEST_WORKERS processes (6 on 2 cores: they mostly wait;
# docs/testing.md has the times measured at 2 to 8).
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_WORKERS ?= 6
test: deps check-includes check-vendor
	$(MAKE) --no-print-directory -j$(JOBS) SANITIZER=address,undefined unit-run
	$(MAKE) --no-print-directory -j$(JOBS) fuzz-smoke
	$(MAKE) --no-print-directory -j$(JOBS) SANITIZER=address,undefined system-run

# the tests marked long: the limiters at KIE's real 20 createTask per 10 s and 10
# recordInfo per second (make test runs the same checks at short windows)
check-long: deps
	$(MAKE) --no-print-directory -j$(JOBS) SANITIZER=address,undefined system-long

# no include cycle, and arrows only down the layers of common/ (docs/architecture.md)
check-includes:
	@$(PYTHON) scripts/check-includes.py

# the page's vendored uPlot is the pinned one (scripts/fetch-uplot.sh)
check-vendor:
	@./scripts/fetch-uplot.sh --check

unit: ; $(MAKE) --no-print-directory SANITIZER=address,undefined unit-run
system: ; $(MAKE) --no-print-directory SANITIZER=address,undefined system-run

.PHONY: unit-run system-run system-long
unit-run: $(UNIT_BIN)
	@pass=0; fail=0; cases=0; for t in $(UNIT_BIN); do \
	  out=$$($(TEST_PREFIX) $$t 2>&1); rc=$$?; printf '%s\n' "$$out"; \
	  n=$$(printf '%s\n' "$$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p'); \
	  cases=$$((cases + $${n:-0})); \
	  if [ $$rc -eq 0 ]; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "unit tests: $$cases passed in $$pass programs; $$fail program(s) failed"; \
	test $$fail -eq 0

# in parallel (pytest-xdist), each test with its own Redis, fakes, ports and directory;
# the 15 slowest listed at the end; the tests marked long left out (check-long runs them)
system-run: all
	KIE_BIN_DIR=$(CURDIR)/$(B) $(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) --durations=15 \
	  tests/system $(PYTEST_ARGS)

system-long: all
	KIE_BIN_DIR=$(CURDIR)/$(B) $(PYTHON) -m pytest -q -n 2 --durations=15 -m long \
	  tests/system $(PYTEST_ARGS)

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
                   $(shell $(PKG_CONFIG) --cflags $(PKGS)) $(FUZZ_SAN)
FUZZ_TARGETS    := $(notdir $(basename $(wildcard fuzz/fuzz_*.c)))
FUZZ_BIN        := $(FUZZ_TARGETS:%=$(FB)/%)
FUZZ_LIB_OBJ    := $(LIB_SRC:%.c=$(FB)/%.o) $(FB)/gen/lua_scripts.o
# -max_len per target: descriptors up to the 64 KiB default cap; the URL target past the
# callback URL's 8 KiB buffer; the page's bodies, queries and headers well past their
# fields
FUZZ_MAXLEN_fuzz_descriptor     := 65536
FUZZ_MAXLEN_fuzz_json_strict    := 8192
FUZZ_MAXLEN_fuzz_kie_response   := 8192
FUZZ_MAXLEN_fuzz_metadata_merge := 4096
FUZZ_MAXLEN_fuzz_url            := 12000
FUZZ_MAXLEN_fuzz_client_addr    := 4096
FUZZ_MAXLEN_fuzz_admin          := 4096
FUZZ_MAXLEN_fuzz_endpoint       := 4096

$(FB)/gen/lua_scripts.c $(FB)/gen/lua_scripts.h &: scripts/embed-lua.sh $(LUA_SRC) $(LUA_LIB)
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

# under -j (make test passes -j$(JOBS)) the targets run side by side, each on a core for
# its 8 s; -k: every target runs even when one fails; -O: each one's lines together
FUZZ_SMOKE := $(FUZZ_TARGETS:%=fuzz-smoke-%)
.PHONY: $(FUZZ_SMOKE)
fuzz-smoke: fuzz-build
	@$(MAKE) --no-print-directory -k -O $(FUZZ_SMOKE)
$(FUZZ_SMOKE): fuzz-smoke-%:
	@FUZZ_KNOWN_BUGS=$(FUZZ_KNOWN_BUGS) ./fuzz/run.sh $* 8 $(FUZZ_MAXLEN_$*)

# the known bugs' reproducers (fuzz/known/): which still fail, which are fixed
fuzz-known: fuzz-build
	@./fuzz/replay-known.sh

demo: deps all
	./scripts/demo.sh

# not part of make test: it measures, it does not check behaviour (bench/compare.py)
BENCH_JOBS ?= 5000
bench: deps
	@$(MAKE) --no-print-directory SANITIZER= all
	KIE_BIN_DIR=$(CURDIR)/build $(PYTHON) bench/compare.py --jobs $(BENCH_JOBS) --commandstats $(BENCH_ARGS)

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the binaries, their man pages, the systemd
# template unit (ExecStart pointed at $(BINDIR)), the env file example and the LICENSE
# (docs/deploy.md). Writes under $(DESTDIR) only, never to /etc: the operator copies the
# example there. `make uninstall` removes exactly these files.
BINDIR         ?= $(PREFIX)/bin
MANDIR         ?= $(PREFIX)/share/man
DOCDIR         ?= $(PREFIX)/share/doc/kie-worker
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL        ?= install
INSTALLED      := $(BINDIR)/kie $(BINDIR)/kie-worker $(MANDIR)/man1/kie.1 \
                  $(MANDIR)/man1/kie-worker.1 $(SYSTEMDUNITDIR)/kie-worker@.service \
                  $(DOCDIR)/examples/kie-worker.env.example $(DOCDIR)/LICENSE

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 755 $(B)/kie $(B)/kie-worker $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 man/kie.1 man/kie-worker.1 $(DESTDIR)$(MANDIR)/man1/
	sed 's|/usr/local/bin/kie-worker|$(BINDIR)/kie-worker|' scripts/systemd/kie-worker@.service \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/kie-worker@.service.tmp
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/kie-worker@.service.tmp
	mv $(DESTDIR)$(SYSTEMDUNITDIR)/kie-worker@.service.tmp \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/kie-worker@.service
	$(INSTALL) -m 644 scripts/systemd/kie-worker.env.example $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 644 LICENSE $(DESTDIR)$(DOCDIR)/

.PHONY: uninstall
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

# clean keeps build/deps (hiredis built from Debian's sources); distclean removes it too
clean:
	find build -mindepth 1 -maxdepth 1 ! -name deps -exec rm -rf {} + 2>/dev/null || true

distclean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
