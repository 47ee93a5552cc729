# AMWI — build, test, install. See README.md.
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
SYSCONFDIR ?= /etc
UNITDIR   ?= /usr/lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG       := github.com/amwi/amwi
LDFLAGS   := -s -w -X $(PKG)/daemon.version=$(VERSION) -X $(PKG)/daemon.commit=$(COMMIT)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
export CGO_ENABLED := 0

# GOOS/GOARCH/GOARM triples for `make cross`: Pi Zero/1, Pi 2/3, Pi 3/4/5 64-bit, x86 NAS.
CROSS := linux/arm/6 linux/arm/7 linux/arm64/ linux/amd64/

.PHONY: all build cross run test test-deps test-go bench install clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o amwi ./cmd/amwi

cross:
	@mkdir -p dist
	@set -e; for t in $(CROSS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
		out=dist/amwi-$$os-$$arch$${arm:+v$$arm}; \
		echo "build $$out"; \
		GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build $(GOFLAGS_BUILD) -o $$out ./cmd/amwi; \
	done

# make run: the daemon with the embedded default config, everything under ./var/, no root.
run: build
	@mkdir -p var/mirror
	@test -f var/amwi.toml || ./amwi config default --local > var/amwi.toml
	./amwi -c var/amwi.toml serve

# make test: installs the real tools the tests use (Debian packages), then every test.
test: test-deps test-go

test-deps:
	scripts/test-deps.sh

# Parsers of outside input, fuzzed briefly on every run (go test -fuzz takes one target
# of one package at a time). FUZZTIME=1m for a longer look.
FUZZTIME ?= 4s
FUZZ := ./daemon/config:FuzzParse ./daemon/repodb:FuzzParseDesc ./daemon/repodb:FuzzParse \
	./hw:FuzzParseMountinfo ./hw:FuzzParseUptime ./hw:FuzzParseMilliCelsius ./hw:FuzzParseModel \
	./daemon/notify:FuzzMessage ./daemon/auth:FuzzParsePHC ./daemon/traffic:FuzzPackageName ./daemon/repodb:FuzzTarReader \
	./mirrorlists:FuzzParseMirrorlist ./mirrorlists:FuzzParseStatus ./daemon/bench:FuzzParseLastsync

test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	@set -e; for f in $(FUZZ); do \
		echo "fuzz $$f ($(FUZZTIME))"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}" 2>&1) || { echo "$$out"; exit 1; }; \
	done

# make bench: amwi vs nginx (wrk), 2,000 slow clients, footprint (scripts/bench.sh), then
# what a sync costs when nothing changed upstream: the lastupdate gate vs a full walk.
bench: build
	scripts/bench.sh
	scripts/bench-dashboard.sh
	$(GO) test -run '^$$' -bench NoChangeSync -benchtime 3x ./daemon/sync

# BIN picks a cross-built binary, e.g. make install BIN=dist/amwi-linux-arm64 DESTDIR=…
BIN ?= amwi
install: $(if $(filter amwi,$(BIN)),build)
	install -Dm755 $(BIN) $(DESTDIR)$(PREFIX)/bin/amwi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml"; \
	else \
		install -Dm644 etc/amwi.toml $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml; \
	fi
	install -dm755 $(DESTDIR)$(SYSCONFDIR)/amwi/mirrorlists
	sed 's|@BINDIR@|$(PREFIX)/bin|g' etc/amwi.service > amwi.service.tmp
	install -Dm644 amwi.service.tmp $(DESTDIR)$(UNITDIR)/amwi.service
	rm -f amwi.service.tmp
	install -Dm644 etc/amwi.socket $(DESTDIR)$(UNITDIR)/amwi.socket
	install -Dm644 etc/sysusers.d/amwi.conf $(DESTDIR)$(SYSUSERSDIR)/amwi.conf
	install -Dm644 etc/tmpfiles.d/amwi.conf $(DESTDIR)$(TMPFILESDIR)/amwi.conf

clean:
	rm -rf amwi dist var bench-out
