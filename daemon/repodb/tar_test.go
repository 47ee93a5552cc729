package repodb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/amwi/amwi/internal/archtest"
)

// tarFile is a regular file of an archive.
type tarFile struct {
	Name string
	Data string
}

// stdTarFiles lists the regular files of data with archive/tar; ok is false when
// archive/tar cannot read all of it or it holds sparse files (whose data archive/tar
// expands).
func stdTarFiles(data []byte) (files []tarFile, ok bool) {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, true
		}
		if err != nil || h.Typeflag == tar.TypeGNUSparse {
			return nil, false
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, false
			}
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, false
		}
		files = append(files, tarFile{h.Name, string(b)})
	}
}

// ourTarFiles lists the regular files of data with tarReader.
func ourTarFiles(data []byte) ([]tarFile, error) {
	tr := newTarReader(bytes.NewReader(data))
	var files []tarFile
	for {
		typ, size, err := tr.next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if typ != '0' {
			continue
		}
		if size > int64(len(data)) {
			return nil, fmt.Errorf("member %q of %d bytes in %d bytes of input", tr.name, size, len(data))
		}
		b := make([]byte, size)
		if err := tr.readAll(b); err != nil {
			return nil, err
		}
		files = append(files, tarFile{string(tr.name), string(b)})
	}
}

// TestTarFormats reads archives that bsdtar (what repo-add uses) and Go write in each of
// their formats, with names that need the ustar prefix, pax records or GNU long names.
func TestTarFormats(t *testing.T) {
	long := strings.Repeat("long-package-name-", 12) + "1.0-1" // over 100, and 155, bytes
	mid := strings.Repeat("p", 90) + "-1.0-1"                  // needs the ustar prefix
	files := []tarFile{
		{"a-1-1/desc", "%NAME%\na\n"},
		{mid + "/desc", "mid"},
		{long + "/desc", "long"},
		{"ünï-1-1/desc", "utf-8"},
		{"empty-1-1/desc", ""},
		{"big-1-1/files", strings.Repeat("x", 5000)},
	}

	t.Run("bsdtar", func(t *testing.T) {
		archtest.Require(t, "bsdtar")
		dir := t.TempDir()
		var names []string
		for _, f := range files {
			writeFile(t, dir, f.Name, []byte(f.Data))
			names = append(names, f.Name)
		}
		for _, format := range []string{"default", "pax", "ustar", "gnutar", "v7"} {
			t.Run(format, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "x.tar")
				args := []string{"-cf", out}
				if format != "default" { // the default is "restricted pax", what repo-add writes
					args = append(args, "--format", format)
				}
				args = append(args, names...)
				cmd := exec.Command("bsdtar", args...)
				cmd.Dir = dir
				if b, err := cmd.CombinedOutput(); err != nil {
					// ustar and v7 cannot hold the long name: bsdtar says so and skips it.
					if format != "ustar" && format != "v7" {
						t.Fatalf("bsdtar: %v\n%s", err, b)
					}
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				checkSameAsStd(t, data, len(files)-2)
			})
		}
	})

	t.Run("go", func(t *testing.T) {
		for _, format := range []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU} {
			t.Run(format.String(), func(t *testing.T) {
				var b bytes.Buffer
				tw := tar.NewWriter(&b)
				for _, f := range files {
					if format == tar.FormatUSTAR && (f.Name == long+"/desc" || strings.ContainsRune(f.Name, 'ü')) {
						continue
					}
					tw.WriteHeader(&tar.Header{Name: f.Name, Size: int64(len(f.Data)), Mode: 0o644, Typeflag: tar.TypeReg, Format: format})
					io.WriteString(tw, f.Data)
				}
				if err := tw.Close(); err != nil {
					t.Fatal(err)
				}
				checkSameAsStd(t, b.Bytes(), 4)
			})
		}
	})
}

// checkSameAsStd checks that tarReader reads what archive/tar reads, and at least min
// files.
func checkSameAsStd(t *testing.T, data []byte, min int) {
	t.Helper()
	want, ok := stdTarFiles(data)
	if !ok {
		t.Fatal("archive/tar cannot read it")
	}
	got, err := ourTarFiles(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if len(got) < min {
		t.Errorf("%d files, want at least %d: %q", len(got), min, got)
	}
}

func TestTarReaderErrors(t *testing.T) {
	good := tarOf(t, member{"a-1-1/desc", "%NAME%\na\n"})
	bad := bytes.Clone(good)
	bad[10] ^= 1 // the name changes, the checksum does not
	if _, err := ourTarFiles(bad); !errors.Is(err, errTarHeader) {
		t.Errorf("bad checksum: %v", err)
	}
	if _, err := ourTarFiles(good[:512+5]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut in the data: %v", err)
	}
	if _, err := ourTarFiles(good[:300]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut in the header: %v", err)
	}
	// archive/tar accepts these as complete, so does tarReader.
	if files, err := ourTarFiles(good[:512+512]); err != nil || len(files) != 1 {
		t.Errorf("no end marker: %v, %v", files, err)
	}
	if files, err := ourTarFiles(good[:512+100]); err != nil || len(files) != 1 {
		t.Errorf("cut in the padding: %v, %v", files, err)
	}
	// A pax header whose records do not parse.
	hdr := func(typ byte, name string, size int) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: name, Size: int64(size), Typeflag: tar.TypeReg, Mode: 0o644})
		blk := b.Bytes()[:512]
		blk[156] = typ
		// Recompute the checksum for the new type flag.
		copy(blk[148:156], "        ")
		sum := 0
		for _, c := range blk {
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return blk
	}
	pad := func(s string) []byte { return append([]byte(s), make([]byte, -len(s)&511)...) }
	for _, rec := range []string{"garbage\n", "5 a=b\n", "99 path=x\n", "11 size=-1\n", "12 path=a\x00b\n"} {
		data := append(append(hdr('x', "pax", len(rec)), pad(rec)...), good...)
		if _, err := ourTarFiles(data); !errors.Is(err, errTarHeader) {
			t.Errorf("pax record %q: %v", rec, err)
		}
	}
	// A pax size record overrides the header's size.
	rec := "10 size=3\n"
	data := append(append(hdr('x', "pax", len(rec)), pad(rec)...), hdr('0', "s-1-1/desc", 0)...)
	data = append(append(data, pad("abc")...), make([]byte, 1024)...)
	if files, err := ourTarFiles(data); err != nil || !reflect.DeepEqual(files, []tarFile{{"s-1-1/desc", "abc"}}) {
		t.Errorf("pax size: %q, %v", files, err)
	}
	checkSameAsStd(t, data, 1)
}

// FuzzTarReader checks tarReader against archive/tar: an archive that archive/tar reads
// in full must give the same regular files.
func FuzzTarReader(f *testing.F) {
	f.Add(tarOf(f, member{"a-1-1/", ""}, member{"a-1-1/desc", v1Desc}))
	f.Add(genDBBytes(f, 2))
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		name := strings.Repeat("n", 120) + "/desc"
		h := &tar.Header{Name: name, Size: 3, Mode: 0o644, Typeflag: tar.TypeReg, Format: format}
		if format == tar.FormatPAX {
			h.PAXRecords = map[string]string{"comment": "x"}
		}
		tw.WriteHeader(h)
		io.WriteString(tw, "abc")
		tw.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, ok := stdTarFiles(data)
		if !ok {
			ourTarFiles(data) // must not panic
			return
		}
		got, err := ourTarFiles(data)
		if err != nil {
			t.Fatalf("archive/tar reads %q, tarReader fails: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}
