package bench

import "testing"

func TestParseCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stat         string
		steal, total int64
	}{
		{"a guest's line", "cpu  2408310 97172 515408 13650337 12426 0 157903 329374 7 9\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
			329374, 2408310 + 97172 + 515408 + 13650337 + 12426 + 157903 + 329374},
		{"guest time is not added again", "cpu  10 0 0 90 0 0 0 5 1000 1000\n", 5, 105},
		{"an old kernel without steal", "cpu  10 0 0 90 0 0 0\n", 0, 0},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", 0, 0},
		{"a field that is no number", "cpu  10 0 0 x 0 0 0 5\n", 0, 0},
		{"empty", "", 0, 0},
	} {
		if steal, total := parseCPUTicks(tc.stat); steal != tc.steal || total != tc.total {
			t.Errorf("%s: got steal %d of %d, want %d of %d", tc.name, steal, total, tc.steal, tc.total)
		}
	}
	if got := stealPct(100, 1000, 150, 2000); got == nil || *got != 5 {
		t.Errorf("stealPct: got %v, want 5", got)
	}
	if got := stealPct(100, 1000, 100, 1000); got != nil {
		t.Errorf("stealPct over no time: got %v, want none", *got)
	}
	if got := stealPct(0, 0, 0, 0); got != nil {
		t.Errorf("stealPct without /proc/stat: got %v, want none", *got)
	}
}
