################################################################################
#
# amwi
#
################################################################################

# The source. By default this very checkout, the one that holds this BR2_EXTERNAL tree
# (buildroot/..), copied with rsync: nothing to download and no hash file to keep. To
# build a published version instead, set all three, e.g. on the make command line:
#   AMWI_SITE=https://github.com/amwi/amwi.git AMWI_SITE_METHOD=git AMWI_VERSION=v1.0.0
# (Buildroot then wants package/amwi/amwi.hash for the tarball it makes.)
AMWI_SITE ?= $(realpath $(BR2_EXTERNAL_AMWI_PATH)/..)
AMWI_SITE_METHOD ?= local
ifeq ($(AMWI_SITE_METHOD),local)
# What `git describe` says of the checkout, as `make` in the checkout stamps it.
ifeq ($(origin AMWI_VERSION),undefined)
AMWI_VERSION := $(shell git -C '$(AMWI_SITE)' describe --tags --always --dirty 2>/dev/null || echo dev)
endif
# Leave out what a work tree may hold beside the sources: the binary, cross builds,
# `make run`'s var/ (maybe a whole mirror), benchmark output, test screenshots.
AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/amwi --exclude=/dist/ --exclude=/var/ --exclude=/bench-out/ \
	--exclude=/e2e/artifacts/
else ifeq ($(BR2_PACKAGE_AMWI),y)
ifeq ($(AMWI_VERSION),)
$(error AMWI_VERSION must name the tag or commit to fetch from AMWI_SITE=$(AMWI_SITE))
endif
endif

# No LICENSE file in the AMWI sources yet.
AMWI_LICENSE = unknown

AMWI_GOMOD = github.com/amwi/amwi
AMWI_BUILD_TARGETS = cmd/amwi
AMWI_LDFLAGS = -s -w -X github.com/amwi/amwi/daemon.version=$(AMWI_VERSION)
# The Makefile's GOTAGS (why: see there); e2e TestBuildrootPackage checks they agree.
AMWI_TAGS = nethttpomithttp2
# A static binary without cgo: no C library needed, none linked.
AMWI_GO_ENV = CGO_ENABLED=0

# Buildroot vendors Go modules (go mod vendor) only for sources it downloads. A local
# tree is rsynced instead, so vendor it here, the same way, before each build, unless
# vendor/ is there and newer than go.mod and go.sum (`make amwi-rebuild` after a go.mod
# change vendors again): from the module proxy AMWI_GOPROXY, which may be a file:// one
# such as your own module cache (see buildroot/README.md).
AMWI_GOPROXY ?= https://proxy.golang.org,direct
define AMWI_GO_VENDOR
	cd $(@D) && \
	if [ ! -f vendor/modules.txt ] || [ go.mod -nt vendor/modules.txt ] || [ go.sum -nt vendor/modules.txt ]; then \
		$(AMWI_DL_ENV) GOFLAGS=-modcacherw GOPROXY=$(AMWI_GOPROXY) $(GO_BIN) mod vendor; \
	fi
endef
AMWI_PRE_BUILD_HOOKS += AMWI_GO_VENDOR

# The golang infrastructure installs bin/amwi as /usr/bin/amwi; then the default config
# (a rootfs overlay's /etc/amwi/amwi.toml replaces it), the folder for your own country
# mirrorlists, and the rsync daemon's config when the sources have one.
define AMWI_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(@D)/etc/amwi.toml $(TARGET_DIR)/etc/amwi/amwi.toml
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/amwi/mirrorlists
	if [ -f $(@D)/etc/rsyncd-amwi.conf ]; then \
		$(INSTALL) -D -m 0644 $(@D)/etc/rsyncd-amwi.conf $(TARGET_DIR)/etc/amwi/rsyncd.conf; \
	fi
endef
AMWI_POST_INSTALL_TARGET_HOOKS += AMWI_INSTALL_CONFIG

# The system user the service runs as (the sysusers.d file below says the same for
# systems that create users at boot).
define AMWI_USERS
	amwi -1 amwi -1 * /var/lib/amwi - - AMWI Arch Linux mirror
endef

# The units with @BINDIR@ made /usr/bin (the rsync daemon's too when the sources have
# them), the user and folders for systemd-sysusers and systemd-tmpfiles, and the preset
# that enables amwi.service and amwi.socket and leaves the timer and rsync daemon off.
AMWI_UNITS = amwi.service amwi.socket amwi-sync.service amwi-sync.timer
define AMWI_INSTALL_INIT_SYSTEMD
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/usr/lib/systemd/system
	for u in $(AMWI_UNITS) \
		$$(cd $(@D)/etc && ls amwi-rsyncd*.socket amwi-rsyncd*.service 2>/dev/null); do \
		sed 's|@BINDIR@|/usr/bin|g' $(@D)/etc/$$u > $(@D)/$$u.br || exit 1; \
		$(INSTALL) -m 0644 $(@D)/$$u.br $(TARGET_DIR)/usr/lib/systemd/system/$$u || exit 1; \
	done
	$(INSTALL) -D -m 0644 $(@D)/etc/sysusers.d/amwi.conf $(TARGET_DIR)/usr/lib/sysusers.d/amwi.conf
	$(INSTALL) -D -m 0644 $(@D)/etc/tmpfiles.d/amwi.conf $(TARGET_DIR)/usr/lib/tmpfiles.d/amwi.conf
	$(INSTALL) -D -m 0644 $(AMWI_PKGDIR)/50-amwi.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/50-amwi.preset
endef

$(eval $(golang-package))
