package web

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/internal/archtest"
)

// TestPackagePageLinksAndEmptyFields: a package page shows only the fields the package
// has (no empty rows), links each dependency to the package that satisfies it (by name,
// or through provides, with version constraints and .so versions stripped), says of
// one no repo here has that it is not in these repos, and of a constraint the linked
// package does not meet what it needs and what the repo has.
func TestPackagePageLinksAndEmptyFields(t *testing.T) {
	o, _ := dashboardOptions(t)
	svc := o.Search.(*search.Service)
	archtest.BuildTree(t, svc.Root, archtest.Repo{Name: "core", Pkgs: []archtest.Pkg{
		{Name: "glibc", Version: "2.40-1", Desc: "GNU C Library"},
		{Name: "bash", Version: "5.2-1", Desc: "The GNU Bourne Again shell", Provides: []string{"sh"}},
		{Name: "zstd", Version: "1.5.6-1", Provides: []string{"libzstd.so=1-64"}},
		{Name: "tool", Version: "1-1", Desc: "uses everything",
			Depends:    []string{"glibc>=2.38", "sh", "libzstd.so=1-64", "nowhere-lib"},
			OptDepends: []string{"bash: for the scripts"}},
		{Name: "newtool", Version: "1-1", Depends: []string{"glibc>=2.41", "libzstd.so>=2", "sh>=5"}},
	}})
	if _, err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(o))
	defer srv.Close()
	c := client(t)

	status, page := getBody(t, c, srv.URL+"/packages/core/tool")
	if status != 200 {
		t.Fatalf("GET /packages/core/tool: %d", status)
	}
	row := func(th string) string {
		i := strings.Index(page, "<th>"+th+"</th>")
		if i < 0 {
			return ""
		}
		r := page[i:]
		return r[:strings.Index(r, "</tr>")]
	}
	deps := row("Depends on")
	for _, want := range []string{
		`<a href="/packages/core/glibc">glibc</a><span class="muted">&gt;=2.38</span>`,
		`<a href="/packages/core/bash">sh</a>`, `(provided by bash)`,
		`<a href="/packages/core/zstd">libzstd.so</a>`, `(provided by zstd)`,
		`nowhere-lib <small class="muted dep-missing">not in these repos</small>`,
	} {
		if !strings.Contains(deps, want) {
			t.Errorf("Depends on row lacks %q:\n%s", want, deps)
		}
	}
	if strings.Contains(deps, "dep-unmet") {
		t.Errorf("met constraints marked:\n%s", deps)
	}
	if opt := row("Optional"); !strings.Contains(opt, `<a href="/packages/core/bash">bash</a><span class="muted">: for the scripts</span>`) {
		t.Errorf("Optional row: %s", opt)
	}
	// Nothing depends on tool: no Required by row.
	if rb := row("Required by"); rb != "" {
		t.Errorf("tool is required by nothing, yet: %s", rb)
	}
	// Fields the package does not have are not shown at all.
	for _, th := range []string{"Groups", "Conflicts", "Replaces", "Make depends", "Check depends", "Base", "Required by"} {
		if row(th) != "" {
			t.Errorf("empty field %q shown", th)
		}
	}
	if m := regexp.MustCompile(`<td>\s*</td>`).FindString(page); m != "" {
		t.Errorf("an empty cell on the page: %q", m)
	}
	_, bash := getBody(t, c, srv.URL+"/packages/core/bash")
	if !strings.Contains(bash, `<a href="/packages/core/tool">tool</a>`) {
		t.Errorf("bash's page does not list tool under Required by")
	}
	if !strings.Contains(bash, "<th>Provides</th><td>sh</td>") {
		t.Errorf("bash's page does not show its provision")
	}
	// A constraint the repo's package does not meet is said next to the link.
	_, page = getBody(t, c, srv.URL+"/packages/core/newtool")
	mk := row("Depends on")
	for _, want := range []string{
		`<a href="/packages/core/glibc">glibc</a><span class="muted">&gt;=2.41</span> <small class="bad dep-unmet">(needs &gt;=2.41, repo has 2.40-1)</small>`,
		`(provided by zstd)</small> <small class="bad dep-unmet">(needs &gt;=2, repo has 1-64)</small>`,
		`(provided by bash)</small> <small class="bad dep-unmet">(needs &gt;=5, bash provides no version)</small>`,
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("newtool's Depends on row lacks %q:\n%s", want, mk)
		}
	}
}
