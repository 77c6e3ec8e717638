# skyjet build. `make` builds ./skyjet; `make test` installs what is missing and runs every test
# (normal build, then the whole suite again under AddressSanitizer + UBSan).

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKGS := luajit libevent inih libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcrypto
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

VERSION := 0.1.0
OPT ?= -O2
# -fvisibility=hidden: none of our names (log_write, timer_add, config_load...) is exported to the
# Lua C modules a service loads; they bind to the Lua C API, which libluajit exports.
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -DSKYJET_VERSION=\"$(VERSION)\" -g -Wall -Wextra -Werror \
	-Wno-unused-parameter -fno-strict-aliasing -fvisibility=hidden -Idaemon -Idaemon/lua $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -lpthread -lm -ldl

# BUILD selects an output tree: build/ (normal) or build-asan/ (sanitizers).
BUILD ?= build
ifeq ($(BUILD),build-asan)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
CFLAGS := $(CFLAGS_BASE) $(OPT) $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN)

DAEMON_SRC := $(wildcard daemon/*.c daemon/lua/*.c)
DAEMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(DAEMON_SRC))
LIB_OBJ := $(filter-out $(BUILD)/daemon/main.o,$(DAEMON_OBJ))
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard test/bench/*.c test/tools/*.c)
TOOL_BIN := $(patsubst %.c,$(BUILD)/%,$(TOOL_SRC))
BIN := $(if $(filter build,$(BUILD)),skyjet,$(BUILD)/skyjet)

.PHONY: all test check unit asan clean install deps bench fuzz format
all: $(BIN) $(TOOL_BIN)

$(BIN): $(DAEMON_OBJ)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard daemon/*.h daemon/lua/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/unit/%: test/unit/%.c $(LIB_OBJ) $(wildcard test/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/test/%: test/%.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

unit: $(UNIT_BIN)

deps:
	@scripts/deps

# The full suite: dependencies (clang and libFuzzer too), normal build, everything again under
# ASan/UBSan, then each libFuzzer harness for 30 s.
test: deps
	@scripts/deps --fuzz
	$(MAKE) check
	$(MAKE) check BUILD=build-asan OPT=-O1
	scripts/fuzz --seconds 30

# One pass of the suite with the current BUILD.
check: $(BIN) $(TOOL_BIN) $(UNIT_BIN)
	@python3 test/run.py --build $(BUILD) --bin $(BIN)

asan:
	$(MAKE) check BUILD=build-asan OPT=-O1

bench: all
	scripts/bench

fuzz:
	scripts/fuzz

format:
	clang-format -i $(wildcard daemon/*.[ch] daemon/lua/*.[ch] test/unit/*.[ch] test/fuzz/*.[ch] test/bench/*.[ch] test/tools/*.[ch])

# The binary goes to $(PREFIX)/bin, lualib/, service/ and config/ to $(PREFIX)/share/skyjet (where
# the binary looks for them), so `skyjet /etc/skyjet/game1.ini` runs from any folder. The systemd
# unit's paths are rewritten for PREFIX; config/ also holds the logrotate rule (skyjet.logrotate);
# the man page goes to $(PREFIX)/share/man/man1. SKYJET_BIN installs another binary as built (e.g.
# build-asan/skyjet) instead of building ./skyjet.
SKYJET_BIN ?= $(BIN)
SHARE := $(DESTDIR)$(PREFIX)/share/skyjet
install: $(SKYJET_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/lualib $(SHARE)/service $(SHARE)/config \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(SKYJET_BIN) $(DESTDIR)$(PREFIX)/bin/skyjet
	install -m 644 docs/skyjet.1 $(DESTDIR)$(PREFIX)/share/man/man1/skyjet.1
	cp -R lualib/. $(SHARE)/lualib/
	cp -R service/. $(SHARE)/service/
	cp -R config/. $(SHARE)/config/
	sed 's|/usr/local|$(PREFIX)|g' config/skyjet@.service > $(SHARE)/config/skyjet@.service

clean:
	rm -rf build build-asan skyjet
