package fakests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// AdminClient drives a running fake STS (a Server's listener, or cmd/fakests) from another
// process through its admin endpoints: PUT /admin/faults, GET and DELETE /stats. It is what
// Server.SetFaults, Stats and ResetStats are in the fake's own process.
type AdminClient struct {
	// URL is the base URL of the listener serving the admin endpoints, e.g.
	// http://127.0.0.1:4566.
	URL string
}

var adminHTTPClient = &http.Client{Timeout: 10 * time.Second}

// SetFaults replaces the injected faults.
func (a AdminClient) SetFaults(faults Faults) error {
	body, err := json.Marshal(faults)
	if err != nil {
		return fmt.Errorf("cannot encode faults: %w", err)
	}
	_, err = a.do(http.MethodPut, "/admin/faults", body)
	return err
}

// Stats returns the fake's call counters.
func (a AdminClient) Stats() (Stats, error) {
	data, err := a.do(http.MethodGet, "/stats", nil)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	if err := json.Unmarshal(data, &st); err != nil {
		return Stats{}, fmt.Errorf("cannot decode fake STS stats: %w", err)
	}
	return st, nil
}

// ResetStats zeroes the fake's call counters.
func (a AdminClient) ResetStats() error {
	_, err := a.do(http.MethodDelete, "/stats", nil)
	return err
}

func (a AdminClient) do(method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, a.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build %s %s: %w", method, path, err)
	}
	resp, err := adminHTTPClient.Do(req)
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
