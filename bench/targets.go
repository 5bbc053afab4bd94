package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Check is one performance target, measured. Targets are reported, not enforced: a missed
// one names the profile that shows why.
type Check struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Got      string `json:"got"`
	Met      bool   `json:"met"`
	// Profile is the saved pprof file of a missed target (CPU, or heap for memory), and Top
	// its `go tool pprof -top` excerpt.
	Profile string `json:"profile,omitempty"`
	Top     string `json:"top,omitempty"`

	profileSrc string
	heap       bool
}

func (r *Results) scenario(name string) *ScenarioRun {
	for _, s := range r.Scenarios {
		if s.Scenario.Name == name {
			return s
		}
	}
	return nil
}

// evaluate compares the run with the performance targets.
func evaluate(r *Results) []Check {
	var cs []Check
	add := func(sc *ScenarioRun, target, got string, met bool) {
		c := Check{Scenario: sc.Scenario.Name, Target: target, Got: got, Met: met}
		if !met {
			c.profileSrc = sc.Profile
		}
		cs = append(cs, c)
	}
	if hot := r.scenario("hot"); hot != nil {
		add(hot, "≥ 0.70 of the trivial server's rps (hey)", fmt.Sprintf("%.2f (%.0f / %.0f rps)", hot.LimitRatio, hot.RPS, r.Limit.RPS), hot.LimitRatio >= 0.70)
		if len(r.Wrk) == 2 {
			w := r.Wrk[1]
			cs = append(cs, Check{Scenario: "wrk-hot", Target: "≥ 0.70 of the trivial server's rps (wrk)",
				Got: fmt.Sprintf("%.2f (%.0f / %.0f rps)", w.LimitRatio, w.Result.RPS, r.Wrk[0].Result.RPS), Met: w.LimitRatio >= 0.70})
			if !cs[len(cs)-1].Met {
				cs[len(cs)-1].profileSrc = w.profile
			}
		}
		add(hot, "≤ 15 µs daemon CPU per review (hey)", fmt.Sprintf("%.1f µs (trivial server under hey: %.1f µs/request)", hot.DaemonCPUPerRevUs, limitCPU(r)), hot.DaemonCPUPerRevUs <= 15)
		if len(r.Wrk) == 2 {
			w := r.Wrk[1]
			c := Check{Scenario: "wrk-hot", Target: "≤ 15 µs daemon CPU per review (wrk)",
				Got: fmt.Sprintf("%.1f µs (trivial server under wrk: %.1f µs/request)", w.ServerCPUPerReqUs, r.Wrk[0].ServerCPUPerReqUs), Met: w.ServerCPUPerReqUs <= 15}
			if !c.Met {
				c.profileSrc = w.profile
			}
			cs = append(cs, c)
		}
		add(hot, "p99 ≤ 3 ms at c=50 (hey)", fmt.Sprintf("%.3f ms (trivial server under hey: %.3f ms)", hot.Latency.P99, r.Limit.Latency.P99), hot.Latency.P99 <= 3)
		if len(r.Wrk) == 2 {
			w := r.Wrk[1]
			c := Check{Scenario: "wrk-hot", Target: "p99 ≤ 3 ms at c=50 (wrk)",
				Got: fmt.Sprintf("%.3f ms (trivial server under wrk: %.3f ms)", w.Result.Latency.P99, r.Wrk[0].Result.Latency.P99), Met: w.Result.Latency.P99 <= 3}
			if !c.Met {
				c.profileSrc = w.profile
			}
			cs = append(cs, c)
		}
	}
	if cold := r.scenario("cold"); cold != nil {
		add(cold, "≤ 80 µs daemon CPU per STS-verified review", fmt.Sprintf("%.1f µs", cold.DaemonCPUPerRevUs), cold.DaemonCPUPerRevUs <= 80)
	}
	for _, name := range []string{"cold", "cold-sts20ms", "cold-sts100ms"} {
		sc := r.scenario(name)
		if sc == nil {
			continue
		}
		lat := float64(sc.Scenario.Faults.Latency) / 1e6
		add(sc, fmt.Sprintf("p99 ≤ STS latency + 5 ms = %.0f ms", lat+5), fmt.Sprintf("%.3f ms", sc.Latency.P99), sc.Latency.P99 <= lat+5)
	}
	for _, name := range []string{"cold", "cold-sts20ms", "cold-sts100ms", "herd"} {
		sc := r.scenario(name)
		if sc == nil {
			continue
		}
		add(sc, "exactly one STS call per distinct token", fmt.Sprintf("%d calls / %d tokens", sc.STSCalls, sc.DistinctTokens),
			sc.STSCalls == uint64(sc.DistinctTokens))
	}
	if inv := r.scenario("invalid"); inv != nil {
		add(inv, "≤ 5 µs daemon CPU per review", fmt.Sprintf("%.1f µs (trivial server under hey: %.1f µs/request)", inv.DaemonCPUPerRevUs, limitCPU(r)), inv.DaemonCPUPerRevUs <= 5)
		add(inv, "zero STS calls", fmt.Sprintf("%d", inv.STSCalls), inv.STSCalls == 0)
	}
	if bad := r.scenario("badsig"); bad != nil {
		add(bad, "one STS call per distinct rejected token",
			fmt.Sprintf("%d calls / %d tokens; %.0f cache entries at the end", bad.STSCalls, bad.DistinctTokens, bad.CacheEntries),
			bad.STSCalls == uint64(bad.DistinctTokens))
	}
	if m := r.Memory; m != nil && len(m.Points) > 0 {
		p := m.Points[len(m.Points)-1]
		c := Check{Scenario: "memory", Target: fmt.Sprintf("≤ 1 KiB per cached identity (at %d identities)", p.Identities),
			Got: fmt.Sprintf("%.0f B", p.BytesPerID), Met: p.BytesPerID <= 1024, heap: true}
		if !c.Met {
			c.profileSrc = m.HeapProfile
		}
		cs = append(cs, c)
	}
	return cs
}

func limitCPU(r *Results) float64 {
	if r.Limit == nil {
		return 0
	}
	return r.Limit.ServerCPUPerReqUs
}

// keepProfiles copies the profiles of missed targets into dir as <run>-<name>.pb.gz and
// records their `go tool pprof -top` excerpts. The other profiles are dropped.
func keepProfiles(r *Results, dir, bin string) error {
	done := map[string]*Check{}
	kept := map[string]string{} // temporary file → saved file
	defer func() {
		// Only saved profiles are named in the results; the others were temporary.
		for _, s := range append(append([]*ScenarioRun(nil), r.Scenarios...), r.TLS) {
			if s != nil {
				s.Profile = kept[s.Profile]
			}
		}
		if r.Memory != nil {
			r.Memory.HeapProfile = kept[r.Memory.HeapProfile]
		}
		if r.Webhook != nil {
			for _, rd := range r.Webhook.Rounds {
				for _, rep := range rd.Reports {
					rep.Profile = kept[rep.Profile]
				}
			}
		}
	}()
	for i := range r.Targets {
		c := &r.Targets[i]
		if c.Met || c.profileSrc == "" {
			continue
		}
		if prev := done[c.profileSrc]; prev != nil {
			c.Profile = prev.Profile // the excerpt is printed once, with the first target
			continue
		}
		done[c.profileSrc] = c
		data, err := os.ReadFile(c.profileSrc)
		if err != nil || len(data) == 0 {
			continue
		}
		name := r.RunID + "-" + strings.TrimSuffix(filepath.Base(c.profileSrc), ".pb.gz") + ".pb.gz"
		dst := filepath.Join(dir, name)
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("cannot save profile %s: %w", dst, err)
		}
		c.Profile = dst
		kept[c.profileSrc] = dst
		args := []string{"tool", "pprof", "-top", "-nodecount=18"}
		if c.heap {
			args = append(args, "-sample_index=inuse_space")
		} else {
			args = append(args, bin)
		}
		out, err := exec.Command("go", append(args, dst)...).Output()
		if err == nil {
			// Drop the file, build ID and time lines: the profile's name says them.
			var keep []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if !strings.HasPrefix(line, "File:") && !strings.HasPrefix(line, "Build ID:") && !strings.HasPrefix(line, "Time:") {
					keep = append(keep, line)
				}
			}
			c.Top = strings.Join(keep, "\n")
		}
	}
	return nil
}
