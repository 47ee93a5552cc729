package e2e

// Appliance delivery: the Buildroot external tree (checked without Buildroot, and built
// offline from vendored modules exactly as Buildroot's golang-package builds it), the
// `make install` tree, the `make dist` tarballs, and the amwi-sync timer units.

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// delivRun runs name in dir with env added and fails the test unless it exits 0.
func delivRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// delivRepo is the absolute, symlink-free path of the repository root.
func delivRepo(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// delivExists says whether the repository has etc/name (the rsync daemon's files are
// installed when they are there).
func delivExists(name string) bool {
	_, err := os.Stat(filepath.Join("..", "etc", name))
	return err == nil
}

// delivUnits are the units make install and the Buildroot package install: ours always,
// the rsync daemon's when etc/ has them.
func delivUnits() []string {
	units := []string{"amwi.service", "amwi.socket", "amwi-sync.service", "amwi-sync.timer"}
	for _, pat := range []string{"amwi-rsyncd*.socket", "amwi-rsyncd*.service"} {
		m, _ := filepath.Glob(filepath.Join("..", "etc", pat))
		for _, f := range m {
			units = append(units, filepath.Base(f))
		}
	}
	return units
}

// delivStub stands in for the parts of Buildroot that package/amwi/amwi.mk relies on, so
// GNU make can read the real .mk: it prints variables (make vars VARS="…"), and runs for a
// build dir BUILD the pre-build hooks (vendoring) or the install-target hooks and
// AMWI_INSTALL_INIT_SYSTEMD into TARGET_DIR.
const delivStub = `# Stand-ins for what Buildroot defines before it reads a package's .mk.
BR2_PACKAGE_AMWI := y
INSTALL := install
AMWI_PKGDIR := $(BR2_EXTERNAL_AMWI_PATH)/package/amwi/
define sep


endef
# Buildroot's golang-package defines the build and the install of bin/amwi; this one
# records that the .mk evaluated it.
golang-package = AMWI_GOLANG_PACKAGE := evaluated
include $(BR2_EXTERNAL_AMWI_PATH)/package/amwi/amwi.mk

.PHONY: vars
vars:
	@:$(foreach v,$(VARS),$(info $(v)=$(strip $($(v)))))

$(BUILD)/.stamp_built:
	$(foreach h,$(AMWI_PRE_BUILD_HOOKS),$(call $(h))$(sep))

$(BUILD)/.stamp_target_installed:
	$(foreach h,$(AMWI_POST_INSTALL_TARGET_HOOKS),$(call $(h))$(sep))
	$(AMWI_INSTALL_INIT_SYSTEMD)
`

// delivMake runs GNU make on the stub with the real amwi.mk and returns its output.
func delivMake(t *testing.T, fail bool, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub.mk")
	if err := os.WriteFile(stub, []byte(delivStub), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--no-print-directory", "-f", stub, "BR2_EXTERNAL_AMWI_PATH=" + filepath.Join(delivRepo(t), "buildroot")}, args...)
	cmd := exec.Command("make", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if (err != nil) != fail {
		t.Fatalf("make %s: %v (want failure: %v)\n%s", strings.Join(args, " "), err, fail, out)
	}
	return string(out)
}

// delivVars evaluates amwi.mk and returns the named variables (whitespace collapsed).
func delivVars(t *testing.T, extra []string, names ...string) map[string]string {
	t.Helper()
	out := delivMake(t, false, append(extra, "vars", "VARS="+strings.Join(names, " "))...)
	vars := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && slices.Contains(names, k) {
			vars[k] = v
		}
	}
	if len(vars) != len(names) {
		t.Fatalf("make printed %d of %d variables:\n%s", len(vars), len(names), out)
	}
	return vars
}

// TestBuildrootExternalTree: buildroot/ is a well-formed BR2_EXTERNAL tree, checked as far
// as that goes without Buildroot: descriptor, Config.in chain, external.mk, the package's
// Config.in and .mk, the preset, and a fragment that sets only BR2_ options.
func TestBuildrootExternalTree(t *testing.T) {
	t.Parallel()
	br := filepath.Join(delivRepo(t), "buildroot")
	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(br, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if !regexp.MustCompile(`(?m)^name: AMWI$`).MatchString(read("external.desc")) {
		t.Errorf("external.desc does not say name: AMWI:\n%s", read("external.desc"))
	}

	// Every package/*/Config.in is sourced from the top Config.in, and every source exists.
	sourced := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^source "\$BR2_EXTERNAL_AMWI_PATH/([^"]+)"$`).FindAllStringSubmatch(read("Config.in"), -1) {
		if _, err := os.Stat(filepath.Join(br, m[1])); err != nil {
			t.Errorf("Config.in sources a missing file: %v", err)
		}
		sourced[m[1]] = true
	}
	pkgs, _ := filepath.Glob(filepath.Join(br, "package", "*", "Config.in"))
	if len(pkgs) == 0 {
		t.Fatal("no package/*/Config.in")
	}
	for _, p := range pkgs {
		rel, _ := filepath.Rel(br, p)
		if !sourced[rel] {
			t.Errorf("top Config.in does not source %s", rel)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(read("Config.in")), "\n") {
		if !strings.HasPrefix(l, "source ") && !strings.HasPrefix(l, "#") && l != "" {
			t.Errorf("top Config.in: unexpected line %q", l)
		}
	}
	if !strings.Contains(read("external.mk"), "include $(sort $(wildcard $(BR2_EXTERNAL_AMWI_PATH)/package/*/*.mk))") {
		t.Errorf("external.mk does not include package/*/*.mk:\n%s", read("external.mk"))
	}

	// The package's Kconfig entry.
	cin := read("package/amwi/Config.in")
	for _, want := range []string{
		"config BR2_PACKAGE_AMWI\n\tbool \"amwi\"\n\tdepends on BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS\n\thelp\n\t  ",
		"\ncomment \"amwi needs an architecture supported by Go\"\n\tdepends on !BR2_PACKAGE_HOST_GO_TARGET_ARCH_SUPPORTS\n",
	} {
		if !strings.Contains(cin, want) {
			t.Errorf("package/amwi/Config.in lacks %q:\n%s", want, cin)
		}
	}
	if strings.Contains(cin, "select ") || strings.Contains(cin, "CGO_LINKING") {
		t.Errorf("package/amwi/Config.in selects something or needs cgo; amwi is built with CGO_ENABLED=0:\n%s", cin)
	}
	// Buildroot's utils/check-package rules for Config.in: help text is <tab><2 spaces>
	// and at most 62 characters (the first not blank) or a lone URL; entries unindented,
	// attributes one tab in.
	helpFirst, helpLine := regexp.MustCompile(`^\t  \S.{0,61}$`), regexp.MustCompile(`^\t  .{0,62}$`)
	urlOnly := regexp.MustCompile(`^(http|https|git)://\S*$`)
	inHelp, first := false, false
	for i, l := range strings.Split(strings.TrimSuffix(cin, "\n"), "\n") {
		trimmed := strings.TrimSpace(l)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(l, "config ") || strings.HasPrefix(l, "comment "):
			inHelp = false
		case l == "\thelp":
			inHelp, first = true, true
		case inHelp:
			re := helpLine
			if first {
				re, first = helpFirst, false
			}
			if !re.MatchString(l) && !urlOnly.MatchString(trimmed) {
				t.Errorf("package/amwi/Config.in:%d: help text is not <tab><2 spaces><62 chars>: %q", i+1, l)
			}
		case !regexp.MustCompile(`^\t(bool|depends on|select|default|prompt|string) `).MatchString(l):
			t.Errorf("package/amwi/Config.in:%d: unexpected line %q", i+1, l)
		}
	}

	// The .mk: Buildroot's header, the variables, golang-package last.
	mk := read("package/amwi/amwi.mk")
	if !strings.HasPrefix(mk, strings.Repeat("#", 80)+"\n#\n# amwi\n#\n"+strings.Repeat("#", 80)+"\n") {
		t.Errorf("amwi.mk does not start with Buildroot's package header")
	}
	for _, v := range []string{"AMWI_VERSION", "AMWI_SITE", "AMWI_SITE_METHOD", "AMWI_LICENSE", "AMWI_GOMOD",
		"AMWI_BUILD_TARGETS", "AMWI_LDFLAGS", "AMWI_TAGS", "AMWI_GO_ENV", "AMWI_USERS", "AMWI_INSTALL_INIT_SYSTEMD"} {
		if !regexp.MustCompile(`(?m)^(` + v + `\s*(\?|:|\+)?=|define ` + v + `$)`).MatchString(mk) {
			t.Errorf("amwi.mk does not define %s", v)
		}
	}
	if lines := strings.Split(strings.TrimSpace(mk), "\n"); lines[len(lines)-1] != "$(eval $(golang-package))" {
		t.Errorf("amwi.mk does not end with $(eval $(golang-package)): %q", lines[len(lines)-1])
	}
	// Buildroot's utils/check-package rules for .mk files: tabs inside define and after a
	// backslash (not elsewhere, conditionals excepted), one space before a backslash, only
	// AMWI_ variables, no trailing whitespace, no two empty lines in a row.
	cond := regexp.MustCompile(`^\s*(ifdef|ifeq|ifndef|ifneq|else|endif)\b`)
	variable := regexp.MustCompile(`^(define\s+)?([A-Z0-9_]+_[A-Z0-9_]+)`)
	inDefine, cont, empty := false, false, false
	for i, l := range strings.Split(strings.TrimSuffix(mk, "\n"), "\n") {
		n := i + 1
		if strings.HasSuffix(l, " ") || strings.HasSuffix(l, "\t") {
			t.Errorf("amwi.mk:%d: trailing whitespace", n)
		}
		if l == "" && empty {
			t.Errorf("amwi.mk:%d: consecutive empty lines", n)
		}
		empty = l == ""
		if regexp.MustCompile(`(  |\t ?)\\$`).MatchString(l) {
			t.Errorf("amwi.mk:%d: use only one space before backslash", n)
		}
		if m := variable.FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[2], "AMWI_") {
			t.Errorf("amwi.mk:%d: variable %s is not AMWI_*", n, m[2])
		}
		wasCont := cont
		cont = regexp.MustCompile(`^[^#].*\\$`).MatchString(l)
		switch {
		case strings.HasPrefix(l, "define "):
			inDefine = true
			continue
		case l == "endef":
			inDefine = false
			continue
		case l == "" || (inDefine && strings.HasPrefix(strings.TrimSpace(l), "#")):
			continue
		}
		expectTab := (inDefine || wasCont) && (wasCont || !cond.MatchString(l))
		if expectTab != strings.HasPrefix(l, "\t") {
			t.Errorf("amwi.mk:%d: indent with a tab: %v: %q", n, expectTab, l)
		}
	}

	// The preset names only units that exist (or the rsync daemon's, which are optional).
	sc := bufio.NewScanner(strings.NewReader(read("package/amwi/50-amwi.preset")))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 || (f[0] != "enable" && f[0] != "disable") {
			t.Errorf("50-amwi.preset: bad line %q", l)
			continue
		}
		if !delivExists(f[1]) && !strings.HasPrefix(f[1], "amwi-rsyncd.") {
			t.Errorf("50-amwi.preset names %s, which etc/ does not have", f[1])
		}
	}

	// The fragment: comments and BR2_ assignments only, with what the appliance needs.
	frag := read("configs/raspberrypi4_64_amwi.fragment")
	set := map[string]string{}
	opt := regexp.MustCompile(`^(BR2_[A-Z0-9_]+)=(y|"[^"]*"|[0-9]+)$`)
	for i, l := range strings.Split(frag, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := opt.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("fragment line %d is not a BR2_ option: %q", i+1, l)
			continue
		}
		if _, dup := set[m[1]]; dup {
			t.Errorf("fragment sets %s twice", m[1])
		}
		set[m[1]] = m[2]
	}
	for _, o := range []string{"BR2_PACKAGE_AMWI", "BR2_INIT_SYSTEMD", "BR2_PACKAGE_RSYNC", "BR2_PACKAGE_CA_CERTIFICATES", "BR2_TOOLCHAIN_BUILDROOT_GLIBC"} {
		if set[o] != "y" {
			t.Errorf("fragment does not set %s=y", o)
		}
	}
}

// TestBuildrootPackageInstall: GNU make reads the real amwi.mk; its variables are what
// Buildroot's golang-package needs, and its install steps, run into a temporary target
// directory, lay out config, units (checked by systemd-analyze verify there), sysusers,
// tmpfiles and preset.
func TestBuildrootPackageInstall(t *testing.T) {
	t.Parallel()
	requireTool(t, "make", "make")
	requireTool(t, "systemd-analyze", "systemd")
	repo := delivRepo(t)
	names := []string{"AMWI_VERSION", "AMWI_SITE", "AMWI_SITE_METHOD", "AMWI_LICENSE", "AMWI_GOMOD", "AMWI_BUILD_TARGETS",
		"AMWI_LDFLAGS", "AMWI_TAGS", "AMWI_GO_ENV", "AMWI_USERS", "AMWI_GOLANG_PACKAGE", "AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"}
	describe := func() string {
		if out, err := exec.Command("git", "-C", repo, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
		return "dev"
	}
	gitVerBefore := describe()
	v := delivVars(t, nil, names...)
	want := map[string]string{
		"AMWI_SITE":           repo,
		"AMWI_SITE_METHOD":    "local",
		"AMWI_LICENSE":        "unknown",
		"AMWI_GOMOD":          "github.com/amwi/amwi",
		"AMWI_BUILD_TARGETS":  "cmd/amwi",
		"AMWI_TAGS":           goTags, // the Makefile's: Buildroot's binary is built as `make` builds it
		"AMWI_GO_ENV":         "CGO_ENABLED=0",
		"AMWI_USERS":          "amwi -1 amwi -1 * /var/lib/amwi - - AMWI Arch Linux mirror",
		"AMWI_GOLANG_PACKAGE": "evaluated",
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	// The default version is what `make` in the checkout stamps (asked before and after
	// make, in case the shared work tree got a commit or an edit in between).
	if gitVer := describe(); v["AMWI_VERSION"] != gitVer && v["AMWI_VERSION"] != gitVerBefore {
		t.Errorf("AMWI_VERSION = %q, want git describe's %q", v["AMWI_VERSION"], gitVer)
	}
	if want := "-X github.com/amwi/amwi/daemon.version=" + v["AMWI_VERSION"]; !strings.Contains(v["AMWI_LDFLAGS"], want) {
		t.Errorf("AMWI_LDFLAGS = %q, lacks %q", v["AMWI_LDFLAGS"], want)
	}
	for _, ex := range []string{"--exclude=/amwi", "--exclude=/dist/", "--exclude=/var/", "--exclude=/bench-out/", "--exclude=/e2e/artifacts/"} {
		if !strings.Contains(v["AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"], ex) {
			t.Errorf("the local rsync does not leave out %s: %q", ex, v["AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"])
		}
	}
	// A user's version, and a git source, which must name its version.
	if v := delivVars(t, []string{"AMWI_VERSION=v1.2.3"}, "AMWI_LDFLAGS"); !strings.Contains(v["AMWI_LDFLAGS"], "daemon.version=v1.2.3") {
		t.Errorf("AMWI_VERSION=v1.2.3 not stamped: %q", v["AMWI_LDFLAGS"])
	}
	git := []string{"AMWI_SITE=https://github.com/amwi/amwi.git", "AMWI_SITE_METHOD=git"}
	if out := delivMake(t, true, append(git, "vars", "VARS=AMWI_VERSION")...); !strings.Contains(out, "AMWI_VERSION must name the tag or commit") {
		t.Errorf("a git source without AMWI_VERSION: %s", out)
	}
	if v := delivVars(t, append(git, "AMWI_VERSION=v1.0.0"), "AMWI_VERSION", "AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"); v["AMWI_VERSION"] != "v1.0.0" || v["AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"] != "" {
		t.Errorf("git source: %v", v)
	}

	// Install into a target dir from a build dir holding the sources' etc/ (the hooks write
	// scratch files there, as they would in output/build/amwi-VERSION/).
	dir := t.TempDir()
	build, target := filepath.Join(dir, "build"), filepath.Join(dir, "target")
	if err := os.Mkdir(build, 0o755); err != nil {
		t.Fatal(err)
	}
	delivRun(t, "", nil, "cp", "-r", filepath.Join(repo, "etc"), filepath.Join(build, "etc"))
	delivMake(t, false, "BUILD="+build, "TARGET_DIR="+target, build+"/.stamp_target_installed")
	unitDir := filepath.Join(target, "usr/lib/systemd/system")
	files := []string{"etc/amwi/amwi.toml", "usr/lib/sysusers.d/amwi.conf", "usr/lib/tmpfiles.d/amwi.conf",
		"usr/lib/systemd/system-preset/50-amwi.preset"}
	if delivExists("rsyncd-amwi.conf") {
		files = append(files, "etc/amwi/rsyncd.conf")
	}
	for _, u := range delivUnits() {
		files = append(files, "usr/lib/systemd/system/"+u)
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(target, f))
		if err != nil {
			t.Errorf("not installed: %s", f)
		} else if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", f, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(filepath.Join(target, "etc/amwi/mirrorlists")); err != nil || !fi.IsDir() {
		t.Errorf("etc/amwi/mirrorlists not made: %v", err)
	}
	for _, u := range delivUnits() {
		src, _ := os.ReadFile(filepath.Join(repo, "etc", u))
		got, _ := os.ReadFile(filepath.Join(unitDir, u))
		if want := bytes.ReplaceAll(src, []byte("@BINDIR@"), []byte("/usr/bin")); !bytes.Equal(got, want) {
			t.Errorf("installed %s is not etc/%s with @BINDIR@ = /usr/bin:\n%s", u, u, got)
		}
	}
	for _, u := range []string{"amwi.service", "amwi-sync.service"} {
		if b, _ := os.ReadFile(filepath.Join(unitDir, u)); !bytes.Contains(b, []byte("\nExecStart=/usr/bin/amwi -c /etc/amwi/amwi.toml ")) {
			t.Errorf("%s does not run /usr/bin/amwi:\n%s", u, b)
		}
	}
	// systemd checks the installed units inside the target (where golang-package puts
	// the binary), with the host's targets and slices standing in for the image's.
	if err := os.MkdirAll(filepath.Join(target, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	delivRun(t, "", nil, "cp", amwiBin, filepath.Join(target, "usr/bin/amwi"))
	delivHostUnits(t, unitDir)
	ours := []string{"amwi.service", "amwi.socket", "amwi-sync.service", "amwi-sync.timer"}
	if out := delivRun(t, unitDir, nil, "systemd-analyze", append([]string{"verify", "--root=" + target}, ours...)...); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify in the target:\n%s", out)
	}
}

// delivHostUnits copies the host's .target and .slice units into dir, so that
// `systemd-analyze verify --root` finds what the units under test order themselves against.
func delivHostUnits(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		targets, _ := filepath.Glob(filepath.Join(d, "*.target"))
		sl, _ := filepath.Glob(filepath.Join(d, "*.slice"))
		if len(targets) == 0 {
			continue
		}
		delivRun(t, "", nil, "cp", append(append([]string{"-n"}, append(targets, sl...)...), dir)...)
		return
	}
	t.Fatal("no systemd units on this machine (install Debian package systemd)")
}

// TestVendoredOfflineBuild: the package builds as Buildroot builds it. The module is
// copied as Buildroot's rsync step copies a local source, amwi.mk's hook runs
// `go mod vendor` there (the download step's job for a downloaded source), then cmd/amwi
// is built for armv7 and arm64 with golang-package's flags and environment and amwi.mk's
// variables, offline: GOFLAGS=-mod=vendor, GOPROXY=off and an empty module cache.
func TestVendoredOfflineBuild(t *testing.T) {
	t.Parallel()
	requireTool(t, "rsync", "rsync")
	requireTool(t, "make", "make")
	const version = "v9.9.9-br"
	v := delivVars(t, []string{"AMWI_VERSION=" + version}, "AMWI_LDFLAGS", "AMWI_TAGS", "AMWI_GO_ENV", "AMWI_GOMOD",
		"AMWI_BUILD_TARGETS", "AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS")

	// Buildroot's rsync of an override/local source (pkg-generic.mk, RSYNC_VCS_EXCLUSIONS).
	dir := t.TempDir()
	src := filepath.Join(dir, "amwi-"+version)
	args := []string{"-au", "--chmod=u=rwX,go=rX"}
	args = append(args, strings.Fields(v["AMWI_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"])...)
	args = append(args, "--exclude", ".svn", "--exclude", ".git", "--exclude", ".hg", "--exclude", ".bzr", "--exclude", "CVS")
	args = append(args, delivRepo(t)+"/", src)
	delivRun(t, "", nil, "rsync", args...)
	for _, gone := range []string{".git", "amwi", "dist", "var", "bench-out", "e2e/artifacts"} {
		if _, err := os.Lstat(filepath.Join(src, gone)); err == nil {
			t.Errorf("the copy has %s", gone)
		}
	}
	os.RemoveAll(filepath.Join(src, "vendor")) // a checkout's own vendor/ would skip the step

	// amwi.mk's pre-build hook vendors the modules (what the download step does for a
	// downloaded source), here the README's offline way: from this machine's module cache
	// as a file:// proxy, into Buildroot's own, empty module cache. AMWI_DL_ENV is what
	// pkg-golang.mk makes it: HOST_GO_COMMON_ENV GOPROXY=direct $(AMWI_GO_ENV).
	modcache := strings.TrimSpace(delivRun(t, "", nil, "go", "env", "GOMODCACHE"))
	hostGo := t.TempDir()
	dlEnv := "GO111MODULE=on GOFLAGS=-mod=vendor GOPATH=" + hostGo + " GOMODCACHE=" + hostGo + "/pkg/mod GOPROXY=off" +
		" GOTOOLCHAIN=local GOWORK=off GOBIN= GOPROXY=direct " + v["AMWI_GO_ENV"]
	hook := []string{"BUILD=" + src, "GO_BIN=go", "AMWI_DL_ENV=" + dlEnv, src + "/.stamp_built"}
	proxy := "AMWI_GOPROXY=file://" + modcache + "/cache/download"
	delivMake(t, false, append(hook, proxy)...)
	modules := filepath.Join(src, "vendor", "modules.txt")
	mods, err := os.ReadFile(modules)
	if err != nil || !bytes.Contains(mods, []byte("\n# golang.org/x/sys ")) {
		t.Fatalf("the vendoring hook made no usable vendor/modules.txt: %v\n%s", err, mods)
	}
	// With vendor/ there and current, the hook does nothing (and so needs no proxy) ...
	delivMake(t, false, append(hook, "AMWI_GOPROXY=off", "GO_BIN=false")...)
	// ... and vendors again when go.mod is newer (a rebuild after a dependency change).
	old, now := time.Unix(1e9, 0), time.Now()
	if err := os.Chtimes(modules, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "go.mod"), now, now); err != nil {
		t.Fatal(err)
	}
	delivMake(t, false, append(hook, proxy)...)
	if fi, err := os.Stat(modules); err != nil || !fi.ModTime().After(old.Add(time.Hour)) {
		t.Errorf("the hook did not vendor again for a go.mod newer than vendor/: %v", err)
	}

	// The build: golang-package's command, HOST_GO_COMMON_ENV + HOST_GO_TARGET_ENV + AMWI_GO_ENV.
	for _, tg := range []struct{ goarch, goarm, qemu, platform string }{
		{"arm", "7", "qemu-arm-static", "linux/arm"},
		{"arm64", "", "qemu-aarch64-static", "linux/arm64"},
	} {
		t.Run(tg.goarch+tg.goarm, func(t *testing.T) {
			t.Parallel()
			requireTool(t, tg.qemu, "qemu-user-static")
			empty := t.TempDir()
			out := filepath.Join(dir, "bin-"+tg.goarch+tg.goarm, "amwi")
			env := []string{"GO111MODULE=on", "GOFLAGS=-mod=vendor", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off",
				"GOPATH=" + empty, "GOMODCACHE=" + filepath.Join(empty, "pkg", "mod"), "GOBIN=",
				"GOOS=linux", "GOARCH=" + tg.goarch, "GOARM=" + tg.goarm}
			env = append(env, strings.Fields(v["AMWI_GO_ENV"])...)
			delivRun(t, src, env, "go", "build", "-ldflags", v["AMWI_LDFLAGS"], "-modcacherw", "-tags", v["AMWI_TAGS"],
				"-trimpath", "-p", strconv.Itoa(runtime.NumCPU()), "-buildvcs=false",
				"-o", out, v["AMWI_GOMOD"]+"/"+v["AMWI_BUILD_TARGETS"])

			// With -trimpath, go version -m leaves -ldflags out (go.dev/issue/52372): the
			// stamp shows in the binary's data and in `amwi version` below.
			info := delivRun(t, "", nil, "go", "version", "-m", out)
			for _, want := range []string{
				"\tpath\tgithub.com/amwi/amwi/cmd/amwi\n",
				"\tbuild\tCGO_ENABLED=0\n",
				"\tbuild\tGOARCH=" + tg.goarch + "\n",
				"\tbuild\t-trimpath=true\n",
				"\tbuild\t-tags=" + goTags + "\n",
				"\tdep\tgolang.org/x/sys\t",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("go version -m lacks %q:\n%s", want, info)
				}
			}
			if tg.goarm != "" && !strings.Contains(info, "\tbuild\tGOARM="+tg.goarm) {
				t.Errorf("go version -m lacks GOARM=%s:\n%s", tg.goarm, info)
			}
			if strings.Contains(info, "\th1:") { // module cache builds record go.sum hashes, vendored ones none
				t.Errorf("dependencies not built from vendor/:\n%s", info)
			}
			if strings.Contains(info, "CGO_ENABLED=1") || strings.Contains(info, "CGO_CFLAGS") {
				t.Errorf("built with cgo:\n%s", info)
			}
			delivStatic(t, out, map[string]elf.Machine{"arm": elf.EM_ARM, "arm64": elf.EM_AARCH64}[tg.goarch], version)
			if tg.goarch == "arm64" {
				checkArm64Size(t, out) // what goes onto an SBC image
			}

			ver, err := exec.Command(tg.qemu, out, "version").CombinedOutput()
			if err != nil || !bytes.Contains(ver, []byte("amwi "+version+"\n")) || !bytes.Contains(ver, []byte(tg.platform)) {
				t.Errorf("%s amwi version: %v\n%s", tg.qemu, err, ver)
			}
		})
	}
}

// delivStatic checks that bin is a static ELF executable for machine (no interpreter, no
// shared libraries) with version stamped in.
func delivStatic(t *testing.T, bin string, machine elf.Machine, version string) {
	t.Helper()
	if b, err := os.ReadFile(bin); err != nil || !bytes.Contains(b, []byte(version)) {
		t.Errorf("%s does not hold the version %s: %v", bin, version, err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", bin, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}
}

// TestInstallTreeComplete: make install lays out everything, the timer units and the rsync
// daemon's files (when etc/ has them) included, with @BINDIR@ made PREFIX/bin, and keeps an
// existing rsyncd.conf; the installed units pass systemd-analyze verify where they landed.
func TestInstallTreeComplete(t *testing.T) {
	t.Parallel()
	requireTool(t, "make", "make")
	requireTool(t, "systemd-analyze", "systemd")
	for _, prefix := range []string{"/usr", "/usr/local"} {
		t.Run(strings.ReplaceAll(strings.Trim(prefix, "/"), "/", "_"), func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			install := func() string {
				return delivRun(t, "..", nil, "make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX="+prefix, "BIN="+amwiBin)
			}
			install()
			unitDir := filepath.Join(dest, "usr/lib/systemd/system")
			for _, f := range []string{prefix + "/bin/amwi", "/etc/amwi/amwi.toml", "/etc/amwi/mirrorlists",
				"/usr/lib/sysusers.d/amwi.conf", "/usr/lib/tmpfiles.d/amwi.conf"} {
				if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
					t.Errorf("not installed: %s", f)
				}
			}
			for _, u := range delivUnits() {
				src, _ := os.ReadFile(filepath.Join("..", "etc", u))
				got, err := os.ReadFile(filepath.Join(unitDir, u))
				if err != nil {
					t.Errorf("not installed: %s", u)
					continue
				}
				if want := bytes.ReplaceAll(src, []byte("@BINDIR@"), []byte(prefix+"/bin")); !bytes.Equal(got, want) {
					t.Errorf("installed %s is not etc/%s with @BINDIR@ = %s/bin:\n%s", u, u, prefix, got)
				}
				if fi, _ := os.Stat(filepath.Join(unitDir, u)); fi.Mode().Perm() != 0o644 {
					t.Errorf("%s has mode %v", u, fi.Mode().Perm())
				}
			}
			if b, _ := os.ReadFile(filepath.Join(unitDir, "amwi-sync.service")); !bytes.Contains(b, []byte("\nExecStart="+prefix+"/bin/amwi -c /etc/amwi/amwi.toml sync --wait\n")) {
				t.Errorf("amwi-sync.service ExecStart not pointed at %s/bin:\n%s", prefix, b)
			}
			if tmp, _ := filepath.Glob(filepath.Join(unitDir, "*.tmp")); len(tmp) > 0 {
				t.Errorf("left behind: %v", tmp)
			}
			if _, err := os.Stat("../amwi.service.tmp"); err == nil {
				t.Errorf("make install wrote amwi.service.tmp into the work tree")
			}

			rsyncd := filepath.Join(dest, "etc/amwi/rsyncd.conf")
			if delivExists("rsyncd-amwi.conf") {
				if _, err := os.Stat(rsyncd); err != nil {
					t.Errorf("etc/rsyncd-amwi.conf not installed as /etc/amwi/rsyncd.conf")
				}
				os.WriteFile(rsyncd, []byte("# mine\n"), 0o644)
				if out := install(); !strings.Contains(out, "keeping existing "+rsyncd) {
					t.Errorf("second install did not say it keeps rsyncd.conf:\n%s", out)
				}
				if b, _ := os.ReadFile(rsyncd); string(b) != "# mine\n" {
					t.Errorf("make install overwrote an existing rsyncd.conf")
				}
			} else if _, err := os.Stat(rsyncd); err == nil {
				t.Errorf("rsyncd.conf installed without etc/rsyncd-amwi.conf")
			}

			// The units, as installed, against the installed binary.
			if prefix == "/usr" {
				delivHostUnits(t, unitDir)
				ours := []string{"amwi.service", "amwi.socket", "amwi-sync.service", "amwi-sync.timer"}
				if out := delivRun(t, unitDir, nil, "systemd-analyze", append([]string{"verify", "--root=" + dest}, ours...)...); strings.TrimSpace(out) != "" {
					t.Errorf("systemd-analyze verify of the installed units:\n%s", out)
				}
			}
		})
	}
}

// TestDistTarballs: make dist makes, for each board, a tarball of the make install tree
// (root-owned, no "." entry, sane modes, the right binary), and a SHA256SUMS that
// sha256sum -c accepts; unpacked the README's way, a tarball keeps an existing config; and
// a second run makes the same bytes.
func TestDistTarballs(t *testing.T) {
	t.Parallel()
	requireTool(t, "make", "make")
	requireTool(t, "sha256sum", "coreutils")
	const version = "v9.9.9-dist"
	dist, again := t.TempDir(), t.TempDir()
	for _, d := range []string{dist, again} {
		delivRun(t, "..", nil, "make", "--no-print-directory", "dist", "DISTDIR="+d, "VERSION="+version, "COMMIT=abc123", "SOURCE_DATE_EPOCH=1700000000")
	}
	// The same tree makes the same bytes (version, commit and file times pinned: the work
	// tree may get a commit in between).
	if a, b := mustRead(t, filepath.Join(dist, "SHA256SUMS")), mustRead(t, filepath.Join(again, "SHA256SUMS")); a != b {
		t.Errorf("two make dist runs differ:\n%s\n%s", a, b)
	}

	arches := map[string][2]string{"armv6": {"arm", "6"}, "armv7": {"arm", "7"}, "arm64": {"arm64", ""}, "amd64": {"amd64", ""}}
	var tarballs []string
	for a := range arches {
		tarballs = append(tarballs, "amwi-"+version+"-linux-"+a+".tar.gz")
	}
	slices.Sort(tarballs)
	entries, _ := os.ReadDir(dist)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"SHA256SUMS", "amwi-linux-amd64", "amwi-linux-arm64", "amwi-linux-armv6", "amwi-linux-armv7"}
	want = append(want, tarballs...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dist holds %v, want %v", got, want)
	}

	// SHA256SUMS: sha256sum format over exactly the tarballs, and it checks out.
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		m := regexp.MustCompile(`^[0-9a-f]{64}  (\S+)$`).FindStringSubmatch(l)
		if m == nil {
			t.Errorf("SHA256SUMS line not in sha256sum format: %q", l)
			continue
		}
		named = append(named, m[1])
	}
	if slices.Sort(named); !slices.Equal(named, tarballs) {
		t.Errorf("SHA256SUMS names %v, want %v", named, tarballs)
	}
	if out := delivRun(t, dist, nil, "sha256sum", "-c", "SHA256SUMS"); strings.Count(out, ": OK\n") != len(tarballs) {
		t.Errorf("sha256sum -c:\n%s", out)
	}

	// Each tarball: exactly the install tree, root-owned, with the right binary.
	list := []string{"etc/", "etc/amwi/", "etc/amwi/amwi.toml", "etc/amwi/mirrorlists/", "usr/", "usr/bin/", "usr/bin/amwi",
		"usr/lib/", "usr/lib/systemd/", "usr/lib/systemd/system/", "usr/lib/sysusers.d/", "usr/lib/sysusers.d/amwi.conf",
		"usr/lib/tmpfiles.d/", "usr/lib/tmpfiles.d/amwi.conf",
		// The Grafana dashboard and the alert rules, for the admin to import (#15).
		"usr/share/", "usr/share/amwi/", "usr/share/amwi/grafana/", "usr/share/amwi/grafana/amwi-dashboard.json",
		"usr/share/amwi/prometheus/", "usr/share/amwi/prometheus/amwi-alerts.yml"}
	if delivExists("rsyncd-amwi.conf") {
		list = append(list, "etc/amwi/rsyncd.conf")
	}
	for _, u := range delivUnits() {
		list = append(list, "usr/lib/systemd/system/"+u)
	}
	slices.Sort(list)
	for a, goarch := range arches {
		t.Run(a, func(t *testing.T) {
			tarball := filepath.Join(dist, "amwi-"+version+"-linux-"+a+".tar.gz")
			names := strings.Fields(delivRun(t, "", nil, "tar", "-tzf", tarball))
			slices.Sort(names)
			if !slices.Equal(names, list) {
				t.Errorf("tar -tzf %s:\n%s\nwant:\n%s", filepath.Base(tarball), strings.Join(names, "\n"), strings.Join(list, "\n"))
			}
			for _, l := range strings.Split(strings.TrimSpace(delivRun(t, "", nil, "tar", "--numeric-owner", "-tvzf", tarball)), "\n") {
				f := strings.Fields(l)
				if len(f) < 6 || f[1] != "0/0" {
					t.Errorf("not owned by root: %q", l)
					continue
				}
				name, mode := f[len(f)-1], f[0]
				wantMode := "-rw-r--r--"
				switch {
				case strings.HasSuffix(name, "/"):
					wantMode = "drwxr-xr-x"
				case name == "usr/bin/amwi":
					wantMode = "-rwxr-xr-x"
				}
				if mode != wantMode {
					t.Errorf("%s has mode %s, want %s", name, mode, wantMode)
				}
			}

			// Unpacked over a system that has a config: the config stays, the root's mode too.
			root := t.TempDir()
			os.Chmod(root, 0o751)
			os.MkdirAll(filepath.Join(root, "etc/amwi"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/amwi/amwi.toml"), []byte("# mine\n"), 0o644)
			delivRun(t, "", nil, "tar", "-C", root, "--skip-old-files", "-xzf", tarball)
			if b, _ := os.ReadFile(filepath.Join(root, "etc/amwi/amwi.toml")); string(b) != "# mine\n" {
				t.Errorf("unpacking with --skip-old-files replaced the config")
			}
			if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o751 {
				t.Errorf("unpacking changed the mode of / to %v", fi.Mode().Perm())
			}
			bin := filepath.Join(root, "usr/bin/amwi")
			inTar, _ := os.ReadFile(bin)
			built, _ := os.ReadFile(filepath.Join(dist, "amwi-linux-"+a))
			if len(inTar) == 0 || !bytes.Equal(inTar, built) {
				t.Errorf("usr/bin/amwi is not dist/amwi-linux-%s", a)
			}
			machine := map[string]elf.Machine{"arm": elf.EM_ARM, "arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}[goarch[0]]
			delivStatic(t, bin, machine, version)
			info := delivRun(t, "", nil, "go", "version", "-m", bin)
			for _, want := range []string{"\tbuild\tCGO_ENABLED=0\n", "\tbuild\tGOARCH=" + goarch[0] + "\n", "\tbuild\t-trimpath=true\n"} {
				if !strings.Contains(info, want) {
					t.Errorf("go version -m lacks %q:\n%s", want, info)
				}
			}
			if goarch[1] != "" && !strings.Contains(info, "\tbuild\tGOARM="+goarch[1]) {
				t.Errorf("go version -m lacks GOARM=%s:\n%s", goarch[1], info)
			}
			if goarch[0] == runtime.GOARCH {
				if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !bytes.HasPrefix(out, []byte("amwi "+version+"\n")) {
					t.Errorf("amwi version from the tarball: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestSyncTimerUnits: amwi-sync.service and amwi-sync.timer pass systemd-analyze verify,
// the service is a oneshot `amwi sync` as the amwi user with amwi.service's whole sandbox
// (and rates at most 2.0 in systemd-analyze security), and the timer fires hourly.
func TestSyncTimerUnits(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	svc, err := os.ReadFile("../etc/amwi-sync.service")
	if err != nil {
		t.Fatal(err)
	}
	timer, err := os.ReadFile("../etc/amwi-sync.timer")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "amwi-sync.service"), bytes.ReplaceAll(svc, []byte("@BINDIR@"), []byte(filepath.Dir(amwiBin))), 0o644)
	os.WriteFile(filepath.Join(dir, "amwi-sync.timer"), timer, 0o644)
	if out := delivRun(t, dir, nil, "systemd-analyze", "verify", "amwi-sync.service", "amwi-sync.timer"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	cmd := exec.Command("systemd-analyze", "security", "--offline=true", "amwi-sync.service")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for amwi-sync.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(string(m[1]), 64); v > 2.0 {
		t.Errorf("amwi-sync.service exposure %.1f > 2.0:\n%s", v, out)
	}

	has := func(name string, unit []byte, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !bytes.Contains(unit, []byte("\n"+l+"\n")) {
				t.Errorf("%s lacks %q", name, l)
			}
		}
	}
	has("amwi-sync.service", svc, "[Service]", "Type=oneshot", "ExecStart=@BINDIR@/amwi -c /etc/amwi/amwi.toml sync --wait",
		"User=amwi", "Group=amwi", "StateDirectory=amwi", "StateDirectoryMode=0750")
	has("amwi-sync.timer", timer, "[Timer]", "OnCalendar=hourly", "RandomizedDelaySec=15m", "Persistent=true",
		"[Install]", "WantedBy=timers.target")
	for _, u := range [][]byte{svc, timer} {
		if !bytes.HasPrefix(u, []byte("# ")) {
			t.Errorf("unit does not start with a comment saying what it is for:\n%s", u)
		}
	}
	if bytes.Contains(svc, []byte("[Install]")) {
		t.Errorf("amwi-sync.service has an [Install] section: the timer starts it")
	}
	// amwi.service's sandbox, line by line (when no daemon runs, `amwi sync` does the
	// work), except that it may write to fewer places: the mirror, not the config.
	main, err := os.ReadFile("../etc/amwi.service")
	if err != nil {
		t.Fatal(err)
	}
	_, sandbox, ok := strings.Cut(string(main), "# Sandboxing")
	if !ok {
		t.Fatal("amwi.service has no # Sandboxing section")
	}
	sandbox, _, _ = strings.Cut(sandbox, "\n\n")
	n := 0
	for _, l := range strings.Split(sandbox, "\n")[1:] {
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "ReadWritePaths="):
			m := regexp.MustCompile(`\nReadWritePaths=(.*)\n`).FindSubmatch(svc)
			if m == nil {
				t.Errorf("amwi-sync.service has no ReadWritePaths=")
				continue
			}
			paths := strings.Fields(string(m[1]))
			if !slices.Contains(paths, "/srv/http/archlinux") {
				t.Errorf("amwi-sync.service cannot write the mirror: ReadWritePaths=%s", m[1])
			}
			for _, p := range paths {
				if !slices.Contains(strings.Fields(strings.TrimPrefix(l, "ReadWritePaths=")), p) {
					t.Errorf("amwi-sync.service may write %s, amwi.service may not", p)
				}
			}
		default:
			has("amwi-sync.service", svc, l)
			n++
		}
	}
	if n < 20 {
		t.Errorf("found only %d sandbox lines in amwi.service", n)
	}
}
