package mirrorsync

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDiskFullMessages: only rsync's own report of a full disk counts, not an upstream
// file name that says so.
func TestDiskFullMessages(t *testing.T) {
	for _, c := range []struct {
		line string
		full bool
	}{
		{`rsync: [receiver] write failed on "/srv/mirror/.amwi/tmp/.huge-1.0-1-x86_64.pkg.tar.zst.AbCdEf": No space left on device (28)`, true},
		{`rsync: [receiver] mkstemp "/srv/mirror/.amwi/tmp/.x.AbCdEf" failed: No space left on device (28)`, true},
		{`rsync: [generator] failed to set times on "/srv/mirror/pool": Disk quota exceeded (122)`, true},
		{`rsync: [sender] link_stat "pool/community/No space left on device (28)" (in archlinux) failed: No such file or directory (2)`, false},
		{`rsync: [sender] link_stat "x: No space left on device (28)" (in archlinux) failed: No space left on device (28)`, false},
		{`rsync error: error in file IO (code 11) at receiver.c(381) [receiver=3.2.7]`, false},
	} {
		l := newLineRing(4)
		l.add(c.line)
		if l.diskFull() != c.full {
			t.Errorf("%q: disk full %v, want %v", c.line, !c.full, c.full)
		}
	}
}

// TestDatabaseNamingItsOwnFiles: a database entry whose %FILENAME% is one of the repo's
// database files is refused (`amwi verify --repair` would otherwise remove the database).
func TestDatabaseNamingItsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	f, _ := os.Create(filepath.Join(dir, "core.db.tar.gz"))
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"core.db", "core.db.tar.gz", "core.files.tar.gz.old", "glibc-2.40-1-x86_64.pkg.tar.zst"} {
		desc := []byte("%FILENAME%\n" + name + "\n\n%NAME%\nx\n\n%VERSION%\n1-1\n\n%CSIZE%\n5\n\n")
		tw.WriteHeader(&tar.Header{Name: name + "-1-1/desc", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(desc))})
		tw.Write(desc)
	}
	tw.Close()
	gz.Close()
	f.Close()
	os.Symlink("core.db.tar.gz", filepath.Join(dir, "core.db"))
	d, err := readRepoDir(dir, "core", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.files) != 1 || d.files[0].name != "glibc-2.40-1-x86_64.pkg.tar.zst" || d.nBad != 3 {
		t.Fatalf("files %v, refused %d %v", d.files, d.nBad, d.bad)
	}
}

// TestRetiredRecordChecked: the record of replaced packages cannot keep them for ever (a
// time in the future) nor name a database file.
func TestRetiredRecordChecked(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, retiredFile), []byte("99999999999\tcore\tvim-1-1-x86_64.pkg.tar.zst\t../../../pool/packages/vim-1-1-x86_64.pkg.tar.zst\n"+
		"1700000000\tcore\tcore.db.sig\t../../../pool/packages/vim-1-1-x86_64.pkg.tar.zst\n"+
		"1700000000\tcore\tx\t../../../../etc/passwd\n"), 0o640)
	rs, err := readRetired(dir)
	if err != nil || len(rs) != 1 || rs[0].name != "vim-1-1-x86_64.pkg.tar.zst" || rs[0].since.After(time.Now()) {
		t.Fatalf("read %+v %v", rs, err)
	}
}
