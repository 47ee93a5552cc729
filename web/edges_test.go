package web

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amwi/amwi/hw"
)

// fakeMachine is a MachineService with a fixed snapshot.
type fakeMachine struct{ snap hw.Snapshot }

func (f *fakeMachine) Latest() hw.Snapshot     { return f.snap }
func (f *fakeMachine) History() []hw.Snapshot { return []hw.Snapshot{f.snap} }

var _ MachineService = (*fakeMachine)(nil)

// TestOneTemperatureLine: the System card has exactly one temperature line: the value
// when a sensor exists, "no sensor" when the reader found none (not also "temp:
// unavailable" beside a dash); other failed sources are still named.
func TestOneTemperatureLine(t *testing.T) {
	c := 47.5
	for _, tt := range []struct {
		name string
		snap hw.Snapshot
		want string
	}{
		{"sensor", hw.Snapshot{Time: time.Now(), TempC: &c, Errors: map[string]string{"board": "x"}}, "47.5 °C"},
		{"no sensor", hw.Snapshot{Time: time.Now(), Errors: map[string]string{"temp": "no thermal zone in /sys/class/thermal", "board": "x"}}, "no sensor"},
		{"not read yet", hw.Snapshot{}, "–"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := dashboardOptions(t)
			o.Machine = &fakeMachine{snap: tt.snap}
			srv := httptest.NewServer(NewHandler(o))
			defer srv.Close()
			_, page := getBody(t, client(t), srv.URL+"/")
			card := page[strings.Index(page, "<h3>System</h3>"):]
			card = card[:strings.Index(card, "</div>\n</div>")]
			if n := strings.Count(card, "temperature") + strings.Count(card, "temp:"); n != 1 {
				t.Errorf("the System card mentions temperature %d times, want once:\n%s", n, card)
			}
			if !strings.Contains(card, "temperature ") || !strings.Contains(card, tt.want) {
				t.Errorf("System card lacks %q:\n%s", tt.want, card)
			}
			if tt.snap.Errors["board"] != "" && !strings.Contains(card, "board: unavailable") {
				t.Errorf("another failed source is no longer named:\n%s", card)
			}
		})
	}
}

// TestBinaryUnitsOnly: the dashboard's templates and scripts print sizes and rates only
// in binary units (units.Bytes, fmtBytes in app.js): no kB, MB/s or GB beside KiB/s.
func TestBinaryUnitsOnly(t *testing.T) {
	si := regexp.MustCompile(`\b\d*\s*[kKMGT]B(/s)?\b|"[kKMGT]B"`)
	for _, fsys := range []fs.FS{templateFS, staticFS} {
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := fs.ReadFile(fsys, p)
			for i, line := range strings.Split(string(b), "\n") {
				if m := si.FindString(line); m != "" {
					t.Errorf("%s:%d: SI unit %q: use binary units (units.Bytes, fmtBytes)", p, i+1, m)
				}
			}
			return nil
		})
	}
}
