package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// child is a process the harness started (the daemon, the fake STS, the trivial server).
type child struct {
	name string
	cmd  *exec.Cmd
	args []string // the command line as run, for the report
	log  string   // file receiving stdout and stderr
}

// startChild runs args (pinned to cpus with taskset when cpus is not empty), logging to
// dir/name.log.
func startChild(name, dir, cpus string, env []string, args ...string) (*child, error) {
	full := args
	if cpus != "" {
		full = append([]string{"taskset", "-c", cpus}, args...)
	}
	logPath := dir + "/" + name + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create log of %s: %w", name, err)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, strings.Join(full, " "), err)
	}
	logFile.Close()
	return &child{name: name, cmd: cmd, args: full, log: logPath}, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// commandLine is the command as run, for the report.
func (c *child) commandLine() string { return strings.Join(c.args, " ") }

// stop sends SIGTERM and waits up to 10 s, then kills.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// restart stops the child and starts its command line again (same addresses, the log
// appended), then waits until readyURL answers; the child then stands for the new process.
func (c *child) restart(ctx context.Context, readyURL string) error {
	c.stop()
	logFile, err := os.OpenFile(c.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the log of %s: %w", c.name, err)
	}
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Env = logFile, logFile, c.cmd.Env
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return fmt.Errorf("cannot restart %s: %w", c.name, err)
	}
	c.cmd = cmd
	return c.waitHTTP(ctx, readyURL)
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	data, _ := os.ReadFile(c.log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// waitHTTP polls url until it answers 200, the child exits or 20 s pass.
func (c *child) waitHTTP(ctx context.Context, url string) error {
	if err := loadtest.CheckLoopbackURL(url); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cannot get %s ready at %s:\n%s", c.name, url, c.tail())
}

// runOutput runs a command and returns its trimmed stdout, or "" when it fails.
func runOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// readAllString is what r has left to read, as a string; errors end it early.
func readAllString(r io.Reader) string {
	data, _ := io.ReadAll(r)
	return string(data)
}

var errSkipped = errors.New("skipped")
