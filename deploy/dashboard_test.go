package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// metric is one of the daemon's Prometheus metrics as the dashboard may query it.
type metric struct {
	histogram bool     // queried as _bucket, _sum, _count
	labels    []string // its own label names, besides the scrape's job and instance
}

// metrics are the daemon's metrics. The source of truth is the daemon's README (metrics table)
// and its metrics test, which keeps that table honest; keep this list in step with them.
var metrics = map[string]metric{
	"iamgate_reviews_total":                      {labels: []string{"result", "reason"}},
	"iamgate_review_duration_seconds":            {histogram: true, labels: []string{"result"}},
	"iamgate_token_rejections_total":             {labels: []string{"reason"}},
	"iamgate_cache_hits_total":                   {labels: []string{"kind"}},
	"iamgate_cache_misses_total":                 {},
	"iamgate_cache_entries":                      {},
	"iamgate_cache_rejected_tokens":              {},
	"iamgate_sts_requests_total":                 {labels: []string{"outcome"}},
	"iamgate_sts_request_duration_seconds":       {histogram: true},
	"iamgate_sts_collapsed_total":                {},
	"iamgate_sts_inflight":                       {},
	"iamgate_sts_concurrency_limit":              {},
	"iamgate_sts_queue_rejections_total":         {},
	"iamgate_sts_rate_limit":                     {},
	"iamgate_sts_rate_limited_total":             {labels: []string{"keys"}},
	"iamgate_mapping_reloads_total":              {labels: []string{"source", "result"}},
	"iamgate_mapping_entries":                    {labels: []string{"kind"}},
	"iamgate_mapping_refused_records":            {labels: []string{"source"}},
	"iamgate_mapping_unparsed_lists":             {labels: []string{"source"}},
	"iamgate_mapping_source_failing":             {labels: []string{"source"}},
	"iamgate_mapping_configmap_errors_total":     {labels: []string{"reason"}},
	"iamgate_ec2_lookups_total":                  {labels: []string{"result"}},
	"iamgate_ec2_lookup_duration_seconds":        {histogram: true},
	"iamgate_build_info":                         {labels: []string{"version", "goversion"}},
	"iamgate_bad_requests_total":                 {labels: []string{"reason"}},
	"iamgate_webhook_connections_total":          {labels: []string{"protocol"}},
	"iamgate_webhook_open_connections":           {labels: []string{"protocol"}},
	"iamgate_webhook_requests_total":             {labels: []string{"protocol"}},
	"iamgate_webhook_tls_handshake_errors_total": {},
}

// scrapeLabels are added by Prometheus to every series.
var scrapeLabels = []string{"job", "instance"}

type dashboardDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardPanel struct {
	ID         int                  `json:"id"`
	Type       string               `json:"type"`
	Title      string               `json:"title"`
	Datasource *dashboardDatasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Datasource *dashboardDatasource `json:"datasource"`
		Expr       string               `json:"expr"`
		RefID      string               `json:"refId"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's panels
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string               `json:"name"`
			Datasource *dashboardDatasource `json:"datasource"`
			Definition string               `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	metricName   = regexp.MustCompile(`iamgate_[a-z0-9_]+`)
	byClause     = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherBlock = regexp.MustCompile(`\{([^{}]*)\}`)
	matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// exprMetrics returns the daemon metrics an expression queries and reports names that are not
// among them (a histogram is queried by its _bucket, _sum or _count series).
func exprMetrics(t *testing.T, where, expr string) []string {
	t.Helper()
	var names []string
	for _, name := range metricName.FindAllString(expr, -1) {
		if m, ok := metrics[name]; ok && !m.histogram {
			names = append(names, name)
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if m, ok := metrics[base]; ok && m.histogram && base != name {
			names = append(names, base)
			continue
		}
		t.Errorf("unexpected metric in %s; got %q; want one of the daemon's metrics (the list in dashboard_test.go)", where, name)
	}
	return names
}

// checkExprLabels reports label names in by/without clauses and matchers that none of the
// expression's metrics has.
func checkExprLabels(t *testing.T, where, expr string, names []string) {
	t.Helper()
	allowed := slices.Clone(scrapeLabels)
	for _, n := range names {
		allowed = append(allowed, metrics[n].labels...)
		if metrics[n].histogram {
			allowed = append(allowed, "le")
		}
	}
	var used []string
	for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			used = append(used, strings.TrimSpace(l))
		}
	}
	for _, m := range matcherBlock.FindAllStringSubmatch(expr, -1) {
		for _, l := range matcherLabel.FindAllStringSubmatch(m[1], -1) {
			used = append(used, l[1])
		}
	}
	for _, l := range used {
		if !slices.Contains(allowed, l) {
			t.Errorf("unexpected label in %s; got %q; want one of %q", where, l, allowed)
		}
	}
}

func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range expr {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

// TestDashboard checks the Grafana dashboard: an importable model with a ${DS_PROMETHEUS} input,
// unique panel ids on a 24-column grid, and queries that use only the daemon's metrics and their
// labels, every metric charted at least once.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatalf("cannot read grafana-dashboard.json: %s", err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("cannot decode grafana-dashboard.json: %s", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("unexpected uid and title; got %q and %q; want both set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("unexpected schemaVersion; got %d; want 36..41 (Grafana 9.4 to 11)", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("unexpected __inputs; got %+v; want the one datasource input DS_PROMETHEUS (prometheus)", d.Inputs)
	}
	wantDS := dashboardDatasource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}
	checkDS := func(where string, ds *dashboardDatasource) {
		t.Helper()
		if ds == nil || *ds != wantDS {
			t.Errorf("unexpected datasource of %s; got %+v; want %+v", where, ds, wantDS)
		}
	}

	charted := map[string]bool{}
	query := func(where, expr string) {
		t.Helper()
		if !balanced(expr) {
			t.Errorf("unexpected brackets in %s; got %q; want balanced (), [] and {}", where, expr)
		}
		names := exprMetrics(t, where, expr)
		if len(names) == 0 {
			t.Errorf("unexpected query in %s; got %q; want one over the daemon's metrics", where, expr)
		}
		for _, n := range names {
			charted[n] = true
		}
		checkExprLabels(t, where, expr, names)
	}
	for _, v := range d.Templating.List {
		where := "variable " + v.Name
		checkDS(where, v.Datasource)
		query(where, v.Definition)
	}

	ids := map[int]bool{}
	var cells [][24]bool // occupied grid cells, by row
	var walk func(panels []dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			where := "panel " + p.Title
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("unexpected id of %s; got %d; want a unique non-zero id", where, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("unexpected gridPos of %s; got %+v; want inside the 24 columns", where, g)
			}
		mark:
			for y := g.Y; y < g.Y+g.H && g.X >= 0 && g.X+g.W <= 24; y++ {
				for len(cells) <= y {
					cells = append(cells, [24]bool{})
				}
				for x := g.X; x < g.X+g.W; x++ {
					if cells[y][x] {
						t.Errorf("unexpected gridPos of %s; got %+v; want no overlap with other panels", where, g)
						break mark
					}
					cells[y][x] = true
				}
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			checkDS(where, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("unexpected targets of %s; got none; want at least one query", where)
			}
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				checkDS(where, tg.Datasource)
				if tg.RefID == "" || refIDs[tg.RefID] {
					t.Errorf("unexpected refId in %s; got %q; want a unique refId", where, tg.RefID)
				}
				refIDs[tg.RefID] = true
				query(where, tg.Expr)
			}
		}
	}
	walk(d.Panels)

	for name := range metrics {
		if !charted[name] {
			t.Errorf("unexpected dashboard coverage; got no panel for %q; want every daemon metric charted", name)
		}
	}
}
