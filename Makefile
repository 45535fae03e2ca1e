# bayeux-fcgi — plain GNU make + pkg-config. All outputs go under $(BUILD).
#   make            release build (build/)
#   make test       sanitizer build (build/san) + every test suite
#   make run        the whole stack in the foreground (redis + workers + nginx)
#   make bench      benchmarks against the peers
#   make fuzz       libFuzzer on the message parser (clang), FUZZ_SECONDS=60
#   CC=clang make   builds with clang as well

CC      ?= cc
BUILD   ?= build
# build/san is always the sanitizer build (make test's): any target built there gets its flags, so a
# later `make BUILD=build/san <one target>` (bench/selftest.sh's floor) links with the same runtime.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(BUILD),build/san)
SAN     ?= $(SAN_FLAGS)
OPT     ?= -O1
endif
OPT     ?= -O2
V       ?= 0
PKGS    := jansson hiredis libevent libevent_pthreads libjwt
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wwrite-strings
BX_CFLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) -g -MMD -MP -Ishared -Ibroker -I$(BUILD)/gen $(PKG_CFLAGS) $(SAN) $(CFLAGS)
BX_LDFLAGS = $(SAN) $(LDFLAGS)
LIBS    := $(PKG_LIBS) -lfcgi -lpthread -lm

ifeq ($(V),0)
Q := @
endif

# Every .c under these folders is part of the core library (no main()).
LIB_SRC  := $(wildcard shared/*.c shared/ext/*.c shared/services/*.c broker/*.c)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/bayeux_lua.o
FCGI_SRC := $(wildcard fcgi/*.c)
FCGI_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(FCGI_SRC))
CTL_SRC  := $(wildcard ctl/*.c)
# bayeux-ws: WebSocket front-end (wslay framing, libcrypto SHA-1, zlib permessage-deflate); shares fcgi/parked.c.
WS_SRC   := $(wildcard ws/*.c)
WS_OBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(WS_SRC) fcgi/parked.c)
WS_LIBS  := -lwslay $(shell pkg-config --libs libcrypto zlib 2>/dev/null)
CTL_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CTL_SRC))
# Unit tests: one binary per tests/unit/test_*.c (cmocka, no servers).
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# Broker tests: one binary per tests/broker/test_*.c (cmocka + a real redis-server).
BRK_SRC  := $(wildcard tests/broker/test_*.c)
BRK_BIN  := $(patsubst tests/broker/%.c,$(BUILD)/tests/%,$(BRK_SRC))
# Integration helpers in C (optional), one binary per tests/integration/*_tool.c
INT_SRC  := $(wildcard tests/integration/*_tool.c)
INT_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INT_SRC))

BINS := $(if $(FCGI_SRC),$(BUILD)/bin/bayeux-fcgi) $(if $(CTL_SRC),$(BUILD)/bin/bayeuxctl) $(if $(WS_SRC),$(BUILD)/bin/bayeux-ws)
BINS := $(or $(strip $(BINS)),$(BUILD)/libbx.a)
# The C load generator of make bench (bench/cgen.c, chttp.c, cws.c, bmsg.c): jansson, wslay and libcrypto
# (WebSocket transport), no libbx.
CGEN := $(BUILD)/bench/bx-cgen
CGEN_OBJ := $(BUILD)/obj/bench/cgen.o $(BUILD)/obj/bench/chttp.o $(BUILD)/obj/bench/cws.o $(BUILD)/obj/bench/bmsg.o
# The latency-floor probe (bench/floor.c + bench/chttp.c): a C Bayeux long-polling client, jansson only.
FLOOR := $(BUILD)/bench/floor

.PHONY: all deps test test-build run bench fuzz clean unit www floor
# Keep intermediate objects of test binaries (no rebuild on every make).
.SECONDARY:
all: $(BINS) $(CGEN) $(FLOOR)

deps:
	@bash scripts/deps.sh

$(BUILD)/libbx.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  CC  $<" || true
	$(Q)$(CC) $(BX_CFLAGS) -c $< -o $@

# The broker's Lua library is embedded in every binary (no file path at run time).
$(BUILD)/gen/bayeux_lua.c: broker/bayeux.lua scripts/embed-lua.sh
	@mkdir -p $(dir $@)
	$(Q)bash scripts/embed-lua.sh $< $@
$(BUILD)/obj/gen/bayeux_lua.o: $(BUILD)/gen/bayeux_lua.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_CFLAGS) -c $< -o $@

$(BUILD)/bin/bayeux-fcgi: $(FCGI_OBJ) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  LD  $@" || true
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $(FCGI_OBJ) $(BUILD)/libbx.a $(LIBS)

$(BUILD)/bin/bayeuxctl: $(CTL_OBJ) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  LD  $@" || true
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $(CTL_OBJ) $(BUILD)/libbx.a $(LIBS)

$(BUILD)/bin/bayeux-ws: $(WS_OBJ) $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  LD  $@" || true
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $(WS_OBJ) $(BUILD)/libbx.a $(LIBS) $(WS_LIBS)

$(CGEN): $(CGEN_OBJ)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  LD  $@" || true
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $(CGEN_OBJ) $(shell pkg-config --libs jansson libcrypto) -lwslay -lm

$(FLOOR): $(BUILD)/obj/bench/floor.o $(BUILD)/obj/bench/chttp.o
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  LD  $@" || true
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $^ $(shell pkg-config --libs jansson) -lm

floor: $(FLOOR)

# bayeux-ws's upgrade rules and deflate bodies are unit-tested directly (not part of libbx).
$(BUILD)/tests/test_ws_upgrade: $(BUILD)/obj/tests/unit/test_ws_upgrade.o $(BUILD)/obj/ws/upgrade.o $(BUILD)/obj/ws/deflate.o $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $^ $(LIBS) $(WS_LIBS) -lcmocka

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $< $(BUILD)/libbx.a $(LIBS) -lcmocka

$(BUILD)/tests/%_tool: $(BUILD)/obj/tests/integration/%_tool.o $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $< $(BUILD)/libbx.a $(LIBS)

# Broker test binaries share a name pattern with unit tests; give them their own rule.
$(BUILD)/tests/broker_%: $(BUILD)/obj/tests/broker/test_%.o $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $< $(BUILD)/libbx.a $(LIBS) -lcmocka
BRK_BIN := $(patsubst tests/broker/test_%.c,$(BUILD)/tests/broker_%,$(BRK_SRC))

test-build: $(BINS) $(CGEN) $(UNIT_BIN) $(BRK_BIN) $(INT_BIN)

# make test: sanitizer build (ASan + UBSan, leaks on) of everything, then every suite.
test: deps
	$(MAKE) --no-print-directory BUILD=build/san OPT=-O1 SAN="$(SAN_FLAGS)" test-build
	$(MAKE) --no-print-directory all
	BUILD=build/san bash tests/run.sh

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do $$t || exit 1; done

# The demo pages import the official CometD client from www/js/cometd/ (copied from npm by
# www/build.sh, gitignored; tests/e2e/run.sh calls it too).
www:
	@bash www/build.sh

run: deps all www
	bash scripts/run.sh

# brokercost: the broker functions' own cost inside Redis (bench/brokercost.c, no servers but Redis).
$(BUILD)/bin/brokercost: $(BUILD)/obj/bench/brokercost.o $(BUILD)/libbx.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BX_LDFLAGS) -o $@ $< $(BUILD)/libbx.a $(LIBS)

bench: deps all $(BUILD)/bin/brokercost $(FLOOR)
	bash bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
