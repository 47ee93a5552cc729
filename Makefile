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
# Build tags of every build and test. nethttpomithttp2 leaves net/http's bundled HTTP/2
# out: AMWI serves plain HTTP/1.1 (pacman's curl speaks it on every mirror) and its
# clients (Discord, the benchmark, "used" mode's fetches) do fine over HTTP/1.1, and the
# stripped arm64 binary is 0.6 MB smaller, within the 12 MB budget (e2e TestBinarySize).
GOTAGS    := nethttpomithttp2
GOFLAGS_BUILD := -trimpath -tags '$(GOTAGS)' -ldflags "$(LDFLAGS)"
export CGO_ENABLED := 0

# GOOS/GOARCH/GOARM triples for `make cross`: Pi Zero/1, Pi 2/3, Pi 3/4/5 64-bit, x86 NAS.
CROSS := linux/arm/6 linux/arm/7 linux/arm64/ linux/amd64/

# Where `make cross` and `make dist` put binaries, tarballs and SHA256SUMS.
DISTDIR   ?= dist
# File times inside the dist tarballs: the last commit's, so the same tree makes the same bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: all build cross dist run test test-deps test-go bench install clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o amwi ./cmd/amwi

cross:
	@mkdir -p $(DISTDIR)
	@set -e; for t in $(CROSS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
		out=$(DISTDIR)/amwi-$$os-$$arch$${arm:+v$$arm}; \
		echo "build $$out"; \
		GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build $(GOFLAGS_BUILD) -o $$out ./cmd/amwi; \
	done

# make dist: for each board a tarball of the tree `make install` lays out (binary, config,
# units, sysusers/tmpfiles, mirrorlists folder), owned by root, to unpack with
# `tar -C / --skip-old-files -xzf`, and SHA256SUMS over them (check: sha256sum -c SHA256SUMS).
DIST_ARCHES := armv6 armv7 arm64 amd64
DIST_TARBALLS := $(foreach a,$(DIST_ARCHES),amwi-$(VERSION)-linux-$(a).tar.gz)
dist: cross
	@set -e; for a in $(DIST_ARCHES); do \
		root=$(DISTDIR)/.root-$$a; rm -rf $$root; \
		$(MAKE) --no-print-directory install BIN=$(DISTDIR)/amwi-linux-$$a DESTDIR=$$root PREFIX=/usr \
			SYSCONFDIR=/etc UNITDIR=/usr/lib/systemd/system SYSUSERSDIR=/usr/lib/sysusers.d \
			TMPFILESDIR=/usr/lib/tmpfiles.d >/dev/null; \
		out=$(DISTDIR)/amwi-$(VERSION)-linux-$$a.tar.gz; \
		echo "dist $$out"; \
		tar -C $$root --sort=name --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w \
			--mtime=@$(SOURCE_DATE_EPOCH) -cf - etc usr | gzip -9n > $$out.tmp; \
		mv $$out.tmp $$out; rm -rf $$root; \
	done
	cd $(DISTDIR) && sha256sum $(DIST_TARBALLS) > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS

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
# of one package at a time). The budget is a count of inputs, not a time: a timed
# -fuzztime races its own deadline on a loaded machine and fails with "context deadline
# exceeded" and no input (go.dev/issue/75804, fixed in Go 1.27). FUZZTIME=1m for a longer look.
FUZZTIME ?= 10000x
FUZZ := ./daemon/config:FuzzParse ./daemon/repodb:FuzzParseDesc ./daemon/repodb:FuzzParse \
	./hw:FuzzParseMountinfo ./hw:FuzzParseUptime ./hw:FuzzParseMilliCelsius ./hw:FuzzParseModel \
	./daemon/notify:FuzzMessage ./daemon/auth:FuzzParsePHC ./daemon/traffic:FuzzPackageName ./daemon/repodb:FuzzTarReader \
	./mirrorlists:FuzzParseMirrorlist ./mirrorlists:FuzzParseStatus ./daemon/bench:FuzzParseLastsync \
	./daemon/mirrorsync:FuzzParseStamp ./daemon/mirrorsync:FuzzLinkTarget ./web:FuzzSafeNext

test-go:
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(GO) test -tags '$(GOTAGS)' -count=1 -timeout 20m ./...
	@set -e; for f in $(FUZZ); do \
		echo "fuzz $$f ($(FUZZTIME))"; \
		out=$$($(GO) test -tags '$(GOTAGS)' -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}" 2>&1) || { echo "$$out"; exit 1; }; \
	done

# make bench: amwi vs nginx (wrk), 2,000 slow clients, footprint (scripts/bench.sh), then
# a sync at Arch's scale against plain rsync (scripts/bench-sync.sh; needs
# ../shared/data/arch-real or ARCH_REAL=DIR), then the lastupdate gate vs a full walk.
bench: build
	scripts/bench.sh
	scripts/bench-dashboard.sh
	scripts/bench-sync.sh
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench NoChangeSync -benchtime 3x ./daemon/mirrorsync
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench UsedDiskLAN ./daemon/mirrorsync
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench Miss -benchtime 3x ./daemon/ondemand

# BIN picks a cross-built binary, e.g. make install BIN=dist/amwi-linux-arm64 DESTDIR=…
BIN ?= amwi
# The systemd units, installed with @BINDIR@ made $(PREFIX)/bin: the daemon's, the sync
# timer's, and the rsync daemon's (mirror re-export) when etc/ has them.
UNITS := amwi.service amwi.socket amwi-sync.service amwi-sync.timer \
	$(notdir $(wildcard etc/amwi-rsyncd*.socket etc/amwi-rsyncd*.service))
install: $(if $(filter amwi,$(BIN)),build)
	install -Dm755 $(BIN) $(DESTDIR)$(PREFIX)/bin/amwi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml"; \
	else \
		install -Dm644 etc/amwi.toml $(DESTDIR)$(SYSCONFDIR)/amwi/amwi.toml; \
	fi
	install -dm755 $(DESTDIR)$(SYSCONFDIR)/amwi/mirrorlists
	@set -e; if [ -f etc/rsyncd-amwi.conf ]; then \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/amwi/rsyncd.conf ]; then \
			echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/amwi/rsyncd.conf"; \
		else \
			echo "install -Dm644 etc/rsyncd-amwi.conf $(DESTDIR)$(SYSCONFDIR)/amwi/rsyncd.conf"; \
			install -Dm644 etc/rsyncd-amwi.conf $(DESTDIR)$(SYSCONFDIR)/amwi/rsyncd.conf; \
		fi; \
	fi
	install -dm755 $(DESTDIR)$(UNITDIR)
	@set -e; for u in $(UNITS); do \
		echo "install etc/$$u $(DESTDIR)$(UNITDIR)/$$u"; \
		sed 's|@BINDIR@|$(PREFIX)/bin|g' etc/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp; \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$u.tmp; \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -Dm644 etc/sysusers.d/amwi.conf $(DESTDIR)$(SYSUSERSDIR)/amwi.conf
	install -Dm644 etc/tmpfiles.d/amwi.conf $(DESTDIR)$(TMPFILESDIR)/amwi.conf
	install -Dm644 etc/grafana/amwi-dashboard.json $(DESTDIR)$(PREFIX)/share/amwi/grafana/amwi-dashboard.json
	install -Dm644 etc/prometheus/amwi-alerts.yml $(DESTDIR)$(PREFIX)/share/amwi/prometheus/amwi-alerts.yml

clean:
	rm -rf amwi dist var bench-out
