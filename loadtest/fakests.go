package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// FakeSTS talks to the admin endpoints of a running fake STS (the library's or cmd/fakests's
// listener): PUT /admin/faults, GET and DELETE /stats.
type FakeSTS struct {
	// URL is the base URL of the listener serving the admin endpoints, e.g.
	// http://127.0.0.1:4566; loopback only.
	URL string
}

var adminClient = &http.Client{Timeout: 10 * time.Second}

// SetFaults replaces the injected faults.
func (f FakeSTS) SetFaults(faults fakests.Faults) error {
	body, err := json.Marshal(faults)
	if err != nil {
		return fmt.Errorf("cannot encode faults: %w", err)
	}
	_, err = f.do(http.MethodPut, "/admin/faults", body)
	return err
}

// Stats returns the fake's call counters.
func (f FakeSTS) Stats() (fakests.Stats, error) {
	data, err := f.do(http.MethodGet, "/stats", nil)
	if err != nil {
		return fakests.Stats{}, err
	}
	var st fakests.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		return fakests.Stats{}, fmt.Errorf("cannot decode fake STS stats: %w", err)
	}
	return st, nil
}

// ResetStats zeroes the fake's call counters.
func (f FakeSTS) ResetStats() error {
	_, err := f.do(http.MethodDelete, "/stats", nil)
	return err
}

// Healthy reports whether /healthz answers.
func (f FakeSTS) Healthy() bool {
	_, err := f.do(http.MethodGet, "/healthz", nil)
	return err == nil
}

func (f FakeSTS) do(method, path string, body []byte) ([]byte, error) {
	if err := CheckLoopbackURL(f.URL); err != nil {
		return nil, err
	}
	req, err := http.NewRequest(method, f.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build %s %s: %w", method, path, err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot %s fake STS %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot read fake STS %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("cannot %s fake STS %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return data, nil
}
