# Makefile — builds build/libkie.a, build/kie (CLI) and build/kie-worker; runs the tests.
#   make            release build (-O2)
#   make test       unit tests (cmocka) + system tests (pytest), C built with ASan+UBSan
#   make test TEST_PREFIX=valgrind   unit tests under valgrind (plain build)
#   make WERROR=0   do not turn warnings into errors;  V=1 shows full commands
#   make SANITIZER=address,undefined  sanitized build into build/san/
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
           -Icommon $(shell pkg-config --cflags $(PKGS))
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
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
WORKER_SRC := $(filter-out worker/cli.c,$(wildcard worker/*.c))
WORKER_OBJ := $(WORKER_SRC:%.c=$(B)/%.o)
CLI_OBJ    := $(B)/worker/cli.o
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test unit system clean install demo
all: $(B)/libkie.a $(B)/kie $(B)/kie-worker

deps:
	./scripts/install-deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libkie.a: $(LIB_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(B)/kie: $(CLI_OBJ) $(B)/libkie.a
	$(call say,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/kie-worker: $(WORKER_OBJ) $(B)/libkie.a
	$(call say,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libkie.a
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libkie.a $(LDFLAGS) $(LDLIBS) -lcmocka

# `make test`: installs what is missing, builds sanitized, runs unit then system tests.
test: deps
	$(MAKE) --no-print-directory SANITIZER=address,undefined unit-run
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

demo: deps all
	./scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/kie $(B)/kie-worker $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
