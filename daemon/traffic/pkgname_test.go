package traffic

import (
	"strings"
	"testing"
)

func TestPackageName(t *testing.T) {
	tests := []struct {
		name, path, want string
		ok               bool
	}{
		{"plain", "/archlinux/extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst", "vim", true},
		{"dashes in the name", "/archlinux/extra/os/x86_64/python-requests-2.32.3-1-any.pkg.tar.zst", "python-requests", true},
		{"epoch", "/archlinux/core/os/x86_64/libjpeg-turbo-2:1.0-1-x86_64.pkg.tar.zst", "libjpeg-turbo", true},
		{"plus and at in the name", "gtk2+extra@x-1.0-2-x86_64.pkg.tar.xz", "gtk2+extra@x", true},
		{"libsigc++", "/archlinux/extra/os/x86_64/libsigc++-2.12.1-1-x86_64.pkg.tar.zst", "libsigc++", true},
		{"dotted pkgrel", "linux-6.9.1.arch1-1.1-x86_64.pkg.tar.zst", "linux", true},
		{"version with underscore and tilde", "foo-1.0_rc1~git-3-aarch64.pkg.tar.gz", "foo", true},
		{"uncompressed", "foo-1-1-any.pkg.tar", "foo", true},
		{"old xz", "/pool/packages/zlib-1:1.3.1-2-x86_64.pkg.tar.xz", "zlib", true},
		{"no directory", "glibc-2.40-1-x86_64.pkg.tar.zst", "glibc", true},

		{"signature skipped", "/archlinux/extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst.sig", "", false},
		{"database", "/archlinux/core/os/x86_64/core.db", "", false},
		{"database archive", "/archlinux/core/os/x86_64/core.db.tar.gz", "", false},
		{"files database", "/archlinux/core/os/x86_64/core.files.tar.gz", "", false},
		{"directory", "/archlinux/extra/os/x86_64/", "", false},
		{"empty", "", "", false},
		{"too few fields", "vim-1-x86_64.pkg.tar.zst", "", false},
		{"empty name", "-1.0-1-x86_64.pkg.tar.zst", "", false},
		{"name starts with a dot", ".hidden-1.0-1-x86_64.pkg.tar.zst", "", false},
		{"name with a space", "my pkg-1.0-1-x86_64.pkg.tar.zst", "", false},
		{"empty version", "foo--1-x86_64.pkg.tar.zst", "", false},
		{"letters in pkgrel", "foo-1.0-a-x86_64.pkg.tar.zst", "", false},
		{"empty arch", "foo-1.0-1-.pkg.tar.zst", "", false},
		{"empty epoch", "foo-:1.0-1-x86_64.pkg.tar.zst", "", false},
		{"partial download file", "foo-1.0-1-x86_64.pkg.tar.zst.part", "", false},
		{"long extension", "foo-1.0-1-x86_64.pkg.tar.zstandard", "", false},
		{"pkg.tar in the directory only", "/a.pkg.tar/foo", "", false},
		{"huge", "/x/" + strings.Repeat("a", 600) + "-1-1-any.pkg.tar.zst", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PackageName(tt.path)
			if got != tt.want || ok != tt.ok {
				t.Errorf("PackageName(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzPackageName(f *testing.F) {
	for _, s := range []string{"vim-9.1-1-x86_64.pkg.tar.zst", "a-2:1-1-any.pkg.tar", "x.sig", "/a/b/-.pkg.tar.xz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, ok := PackageName(path)
		if !ok {
			if name != "" {
				t.Fatalf("not a package but name %q", name)
			}
			return
		}
		if !validName(name) || !strings.Contains(path, name+"-") {
			t.Fatalf("PackageName(%q) = %q", path, name)
		}
	})
}

func FuzzRepoOf(f *testing.F) {
	for _, s := range []string{"extra/os/x86_64/vim-9.1-1-x86_64.pkg.tar.zst", "pool/packages/x", "core/os", "lastupdate", "/a/os/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		repo := RepoOf(rel)
		switch {
		case repo == "", repo == Pool:
		case !validName(repo) || len(repo) > 64 || !strings.HasPrefix(strings.TrimPrefix(rel, "/"), repo+"/os"):
			t.Fatalf("RepoOf(%q) = %q", rel, repo)
		}
	})
}
