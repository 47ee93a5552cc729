package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/web"
)

// errNoMatch makes `amwi search` exit 1 when nothing matched, as `pacman -Ss` does.
var errNoMatch = errors.New("no packages match")

// searchRepos is what the index covers: the configured repos, or Arch's main ones for a
// full mirror.
func searchRepos(cfg *config.Config) []string {
	if len(cfg.Mirror.Repos) == 1 && cfg.Mirror.Repos[0] == "*" {
		return []string{"core", "extra", "multilib"}
	}
	return cfg.Mirror.Repos
}

// searchCmd is `amwi search [--repo R] [--json] TERM...`: it reads the mirror's databases
// itself (no daemon needed) and prints like pacman -Ss.
func (c *cli) searchCmd(args []string) error {
	fs := c.flags("search")
	repo := fs.String("repo", "", "only this repository")
	asJSON := fs.Bool("json", false, "print JSON (the fields of /api/search)")
	if err := c.parseFlags(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(strings.Join(fs.Args(), "")) == "" {
		fmt.Fprintf(c.env.Stderr, "amwi search: say what to search for, e.g. amwi search linux\n")
		return ErrUsage
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	svc := &search.Service{Root: cfg.Mirror.Root, Repos: searchRepos(cfg), Log: c.quietLogger()}
	if _, err := svc.Load(); err != nil {
		fmt.Fprintf(c.env.Stderr, "amwi search: %v\n", err)
	}
	ix := svc.Index()
	if *repo != "" && !contains(ix.Repos, *repo) {
		return fmt.Errorf("unknown repo %q (this mirror has %s)", *repo, strings.Join(ix.Repos, ", "))
	}
	res, err := ix.Search(search.Query{Text: strings.Join(fs.Args(), " "), Repo: *repo, Page: 1, PerPage: ix.Len() + 1})
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Count   int               `json:"count"`
			Results []web.PackageJSON `json:"results"`
		}{res.Count, []web.PackageJSON{}}
		for _, p := range res.Results {
			out.Results = append(out.Results, web.ToJSON(p))
		}
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, p := range res.Results {
			line := p.Repo + "/" + p.Name + " " + p.Version
			if len(p.Groups) > 0 {
				line += " (" + strings.Join(p.Groups, " ") + ")"
			}
			fmt.Fprintf(c.env.Stdout, "%s\n    %s\n", line, p.Desc)
		}
	}
	if res.Count == 0 {
		return errNoMatch
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
