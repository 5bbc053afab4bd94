package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process reads the resource use of another process (the daemon) from /proc.
type Process struct {
	PID int
}

// CPU returns the process's CPU time (utime + stime of /proc/PID/stat, all threads), with the
// resolution of one clock tick (usually 10 ms).
func (p Process) CPU() (time.Duration, error) {
	user, sys, err := p.CPUSplit()
	return user + sys, err
}

// CPUSplit returns the process's user and system CPU time (utime and stime).
func (p Process) CPUSplit() (user, sys time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read CPU time of process %d: %w", p.PID, err)
	}
	return parseStatCPU(data, clockTick())
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line. The command
// name (field 2) may contain spaces and parentheses, so fields are counted after its last ')'.
func parseStatCPU(data []byte, tick time.Duration) (user, sys time.Duration, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("cannot parse /proc stat %q", data)
	}
	f := strings.Fields(string(data[i+1:]))
	// After the comm, f[0] is field 3 (state): utime is field 14 → f[11], stime f[12].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("cannot parse /proc stat: %d fields after the command", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("cannot parse utime %q and stime %q", f[11], f[12])
	}
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

// Memory returns the current (VmRSS) and peak (VmHWM) resident set size in bytes.
func (p Process) Memory() (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read memory of process %d: %w", p.PID, err)
	}
	return statusKB(data, "VmRSS:") * 1024, statusKB(data, "VmHWM:") * 1024, nil
}

// CPUs returns the CPUs the process may run on (Cpus_allowed_list), e.g. "1" or "0-1".
func (p Process) CPUs() string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// ResetPeak resets VmHWM to the current RSS (writes 5 to /proc/PID/clear_refs). It fails
// without the permission to do so; the peak is then the peak since the process started.
func (p Process) ResetPeak() error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID), []byte("5"), 0); err != nil {
		return fmt.Errorf("cannot reset the peak RSS of process %d: %w", p.PID, err)
	}
	return nil
}

func statusKB(data []byte, key string) int64 {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

var (
	tickOnce sync.Once
	tick     time.Duration
)

// clockTick is the length of one /proc clock tick (getconf CLK_TCK, 100 Hz by default).
func clockTick() time.Duration {
	tickOnce.Do(func() {
		tick = 10 * time.Millisecond
		out, err := exec.Command("getconf", "CLK_TCK").Output()
		if err != nil {
			return
		}
		if hz, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && hz > 0 {
			tick = time.Second / time.Duration(hz)
		}
	})
	return tick
}

// SelfCPUs returns the CPUs this process may run on.
func SelfCPUs() string { return Process{PID: os.Getpid()}.CPUs() }
