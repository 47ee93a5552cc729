package web

import (
	"encoding/json"
	"errors"
	"github.com/amwi/amwi/internal/layout"
	"net/http"
	"strconv"
	"time"

	"github.com/amwi/amwi/daemon/search"
)

// SearchService is the package index as the web side uses it (search.Service implements it).
type SearchService interface {
	Index() *search.Index
	Problems() map[string]string
}

var _ SearchService = (*search.Service)(nil)

// PackageJSON is a package in archweb's field names, so scripts written against
// archlinux.org/packages/search/json/ work against AMWI too.
type PackageJSON struct {
	Name         string   `json:"pkgname"`
	Base         string   `json:"pkgbase"`
	Repo         string   `json:"repo"`
	Arch         string   `json:"arch"`
	Pkgver       string   `json:"pkgver"`
	Pkgrel       string   `json:"pkgrel"`
	Epoch        int      `json:"epoch"`
	Version      string   `json:"full_version"`
	Desc         string   `json:"pkgdesc"`
	URL          string   `json:"url"`
	Filename     string   `json:"filename"`
	CSize        int64    `json:"compressed_size"`
	ISize        int64    `json:"installed_size"`
	BuildDate    string   `json:"build_date"`
	Packager     string   `json:"packager"`
	SHA256       string   `json:"sha256sum"`
	Groups       []string `json:"groups"`
	Licenses     []string `json:"licenses"`
	Conflicts    []string `json:"conflicts"`
	Provides     []string `json:"provides"`
	Replaces     []string `json:"replaces"`
	Depends      []string `json:"depends"`
	OptDepends   []string `json:"optdepends"`
	MakeDepends  []string `json:"makedepends"`
	CheckDepends []string `json:"checkdepends"`
	DownloadURL  string   `json:"download_url"`
	RequiredBy   []PkgRef `json:"required_by,omitempty"`
}

// PkgRef names a package.
type PkgRef struct {
	Repo string `json:"repo"`
	Name string `json:"pkgname"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ToJSON converts an index entry.
func ToJSON(p *search.Package) PackageJSON {
	epoch, _ := strconv.Atoi(p.Epoch)
	j := PackageJSON{
		Name: p.Name, Base: p.Base, Repo: p.Repo, Arch: p.Arch, Pkgver: p.Pkgver, Pkgrel: p.Pkgrel, Epoch: epoch,
		Version: p.Version, Desc: p.Desc, URL: p.URL, Filename: p.Filename, CSize: p.CSize, ISize: p.ISize,
		Packager: p.Packager, SHA256: p.SHA256Sum,
		Groups: nonNil(p.Groups), Licenses: nonNil(p.Licenses), Conflicts: nonNil(p.Conflicts), Provides: nonNil(p.Provides),
		Replaces: nonNil(p.Replaces), Depends: nonNil(p.Depends), OptDepends: nonNil(p.OptDepends),
		MakeDepends: nonNil(p.MakeDepends), CheckDepends: nonNil(p.CheckDepends),
		DownloadURL: MirrorPrefix + layout.RepoDir(p.Repo) + "/" + p.Filename,
	}
	if j.Base == "" {
		j.Base = p.Name
	}
	if p.BuildDate > 0 {
		j.BuildDate = time.Unix(p.BuildDate, 0).UTC().Format(time.RFC3339)
	}
	return j
}

func isRepo(ix *search.Index, r string) bool {
	for _, x := range ix.Repos {
		if x == r {
			return true
		}
	}
	return false
}

// searchAPI answers GET /api/search?q=&repo=&arch=&page=.
func searchAPI(s SearchService, perPage func() int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := s.Index()
		q := r.URL.Query()
		query := search.Query{Text: q.Get("q"), Repo: q.Get("repo"), Arch: q.Get("arch"), PerPage: perPage(), Page: 1}
		if query.Repo != "" && !isRepo(ix, query.Repo) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unknown repo " + strconv.Quote(query.Repo), "repos": ix.Repos})
			return
		}
		if query.Arch != "" && query.Arch != layout.Arch && query.Arch != "any" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "arch must be " + layout.Arch + " or any"})
			return
		}
		if p := q.Get("page"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "page must be a number from 1"})
				return
			}
			query.Page = n
		}
		res, err := ix.Search(query)
		if errors.Is(err, search.ErrBadQuery) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		out := struct {
			Count    int               `json:"count"`
			Page     int               `json:"page"`
			NumPages int               `json:"num_pages"`
			Limit    int               `json:"limit"`
			Results  []PackageJSON     `json:"results"`
			Problems map[string]string `json:"problems,omitempty"`
		}{res.Count, res.Page, res.NumPages, res.Limit, make([]PackageJSON, 0, len(res.Results)), s.Problems()}
		for _, p := range res.Results {
			out.Results = append(out.Results, ToJSON(p))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// packageAPI answers GET /api/packages/{repo}/{name}: every field, required-by, download URL.
func packageAPI(s SearchService) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ix := s.Index()
		p := ix.Get(r.PathValue("repo"), r.PathValue("name"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no package " + r.PathValue("repo") + "/" + r.PathValue("name") + " on this mirror"})
			return
		}
		j := ToJSON(p)
		j.RequiredBy = []PkgRef{}
		for _, q := range ix.RequiredBy(p) {
			j.RequiredBy = append(j.RequiredBy, PkgRef{Repo: q.Repo, Name: q.Name})
		}
		writeJSON(w, http.StatusOK, j)
	}
}

// changesAPI answers GET /api/changes: what the latest sync that changed something changed.
func changesAPI(s SyncService) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hist, err := s.History(50)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot read sync history"})
			return
		}
		for _, run := range hist {
			if len(run.Changes) == 0 {
				continue
			}
			writeJSON(w, http.StatusOK, struct {
				RunID   uint64          `json:"run_id"`
				End     time.Time       `json:"end"`
				Changes json.RawMessage `json:"changes"`
			}{run.ID, run.End, run.Changes})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"run_id": nil, "changes": nil})
	}
}
