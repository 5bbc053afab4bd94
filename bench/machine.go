package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// currentCommit is HEAD's short hash, with -dirty when the code differs from it (the
// harnesses' own outputs do not count), from any folder of the repository.
func currentCommit() string {
	commit := runOutput("git", "rev-parse", "--short=12", "HEAD")
	if commit == "" {
		return "unknown"
	}
	if runOutput("git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)bench/results", ":(top,exclude)BENCHMARKS.md") != "" {
		commit += "-dirty"
	}
	return commit
}

func machine() Machine {
	// runtime.NumCPU sees only this process's affinity (pinned): ask for the online CPUs.
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Kernel: runOutput("uname", "-sr")}
	if n, err := strconv.Atoi(runOutput("getconf", "_NPROCESSORS_ONLN")); err == nil && n > 0 {
		m.CPUs = n
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMiB = kb / 1024
			}
		}
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuTicks reads /proc/stat's first line: the clock ticks of all CPUs so far in all states,
// and of those the ticks the hypervisor ran something else while a CPU of this guest had work
// (steal). Zeros where there is no /proc/stat.
func cpuTicks() (steal, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseCPUTicks(string(data))
}

// parseCPUTicks parses the "cpu  user nice system idle iowait irq softirq steal ..." line.
// guest and guest_nice are part of user and nice already, so they are not added again.
func parseCPUTicks(stat string) (steal, total int64) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:9] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return steal, total
}

// stealPct is the share of the machine's CPU time stolen by the hypervisor between two
// cpuTicks readings, in percent; nil when the readings tell nothing (no /proc/stat).
func stealPct(steal0, total0, steal1, total1 int64) *float64 {
	if total0 == 0 || total1 <= total0 {
		return nil
	}
	pct := 100 * float64(steal1-steal0) / float64(total1-total0)
	return &pct
}
