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
