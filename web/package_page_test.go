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
// or through provides, with version constraints and .so versions stripped) and says of
// one no repo here has that it is not in these repos.
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
}
