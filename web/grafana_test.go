package web

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	gdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// grafanaPanelTypes are the panel plugins the dashboard uses, whose option schemas the
// strict decoding below checks; a panel of any other type fails the test until its
// schema is registered here too.
var grafanaPanelTypes = map[string]bool{"row": true, "stat": true, "timeseries": true}

// TestGrafanaDashboardSchema: etc/grafana/amwi-dashboard.json decodes strictly into
// Grafana's own dashboard schema (the Grafana Foundation SDK's types, generated from the
// schemas Grafana itself validates against): no unknown or misspelled field anywhere —
// panel options, field config, Prometheus queries, variables — and every field the schema
// requires present, then Validate. With no Grafana on the build machine this is as close
// to "Grafana imports it" as a test gets. The export-only keys (__inputs, __requires,
// __elements), which Grafana's import dialog reads and drops, are checked by
// TestDashboardAndAlertsUseRealMetrics and left out here.
func TestGrafanaDashboardSchema(t *testing.T) {
	rt := cog.NewRuntime()
	rt.RegisterPanelcfgVariant(stat.VariantConfig())
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterDataqueryVariant(prometheus.VariantConfig())

	b, err := os.ReadFile(etcFile(t, "grafana", "amwi-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("amwi-dashboard.json: %v", err)
	}
	for _, k := range []string{"__inputs", "__requires", "__elements"} {
		delete(raw, k)
	}
	var types struct {
		Panels []struct {
			Type   string `json:"type"`
			Title  string `json:"title"`
			Panels []struct {
				Type  string `json:"type"`
				Title string `json:"title"`
			} `json:"panels"`
		} `json:"panels"`
	}
	model, _ := json.Marshal(raw)
	if err := json.Unmarshal(model, &types); err != nil {
		t.Fatal(err)
	}
	for _, p := range types.Panels {
		if !grafanaPanelTypes[p.Type] {
			t.Errorf("panel %q is a %q: register its schema in grafanaPanelTypes and above", p.Title, p.Type)
		}
		for _, c := range p.Panels {
			if !grafanaPanelTypes[c.Type] {
				t.Errorf("panel %q is a %q: register its schema in grafanaPanelTypes and above", c.Title, c.Type)
			}
		}
	}

	var d gdashboard.Dashboard
	if err := strictErr(d.UnmarshalJSONStrict(model)); err != nil {
		t.Errorf("amwi-dashboard.json against Grafana's dashboard schema:\n%v", err)
	}
	if err := strictErr(d.Validate()); err != nil {
		t.Errorf("amwi-dashboard.json: %v", err)
	}
	if len(d.Panels) != len(types.Panels) {
		t.Errorf("decoded %d panels of %d", len(d.Panels), len(types.Panels))
	}

	// The check itself: a misspelled option and a misspelled query field are caught.
	bad := []byte(`{"title":"x","panels":[{"type":"stat","id":1,"gridPos":{"h":1,"w":1,"x":0,"y":0},` +
		`"options":{"colorMod":"value"},"targets":[{"refId":"A","exp":"up"}]}]}`)
	if err := strictErr(new(gdashboard.Dashboard).UnmarshalJSONStrict(bad)); err == nil {
		t.Errorf("strict decoding took a misspelled option and query field")
	}
}

// strictErr is err, or nil for the SDK's empty error list (it returns a nil BuildErrors
// as a non-nil error).
func strictErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
