package aws4

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	f := func(v string, want time.Time, wantOK bool) {
		t.Helper()
		got, ok := ParseDate(v)
		if ok != wantOK || !got.Equal(want) {
			t.Errorf("unexpected result for %q; got %s, %v; want %s, %v", v, got, ok, want, wantOK)
		}
		gotB, okB := ParseDate([]byte(v))
		if okB != ok || !gotB.Equal(got) {
			t.Errorf("unexpected difference between string and []byte for %q", v)
		}
	}
	f("20261127T014411Z", time.Date(2026, 11, 27, 1, 44, 11, 0, time.UTC), true)
	f("20240229T235959Z", time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), true)
	f("00010101T000000Z", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), true)
	for _, bad := range []string{
		"", "20261127T014411", "20261127T014411Z0", "20261127 014411Z", "20261127T014411z",
		"2026112xT014411Z", "+0261127T014411Z", "20261127T-14411Z",
		"20261327T014411Z", "20260027T014411Z", "20261100T014411Z", "20261132T014411Z",
		"20260431T014411Z", "20250229T014411Z", "20261127T244411Z", "20261127T016011Z",
		"20261127T014460Z",
	} {
		f(bad, time.Time{}, false)
	}
}

// FuzzParseDate: ParseDate never panics, reads strings and byte slices alike, accepts only what
// formats back to itself (no normalisation) and everything time.Parse accepts in digits.
func FuzzParseDate(f *testing.F) {
	f.Add("20261127T014411Z")
	f.Add("20260431T014411Z")
	f.Add("+0261127T014411Z")
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := ParseDate(v)
		gotB, okB := ParseDate([]byte(v))
		if ok != okB || !got.Equal(gotB) {
			t.Fatalf("unexpected difference between string and []byte for %q", v)
		}
		if ok && got.Format(DateLayout) != v {
			t.Fatalf("unexpected normalisation of %q to %s", v, got.Format(DateLayout))
		}
		if _, err := time.Parse(DateLayout, v); err == nil && len(v) == 16 && AllDigits(v[:8]) && AllDigits(v[9:15]) && !ok {
			t.Fatalf("unexpected refusal of %q, which time.Parse accepts", v)
		}
	})
}

func TestHex(t *testing.T) {
	sum := sha256.Sum256(nil)
	h := string(AppendHex(nil, sum[:]))
	if h != EmptyPayloadHash {
		t.Fatalf("unexpected hex of the empty SHA-256; got %s; want %s", h, EmptyPayloadHash)
	}
	if !IsLowerHex(h, 64) || !IsLowerHex([]byte(h), 64) || IsLowerHex(h, 63) || IsLowerHex(h[:63]+"A", 64) || IsLowerHex(h[:63]+"g", 64) {
		t.Errorf("unexpected IsLowerHex result")
	}
	var dst [32]byte
	if !DecodeLowerHex(dst[:], h) || dst != sum {
		t.Errorf("unexpected DecodeLowerHex result; got %x; want %x", dst, sum)
	}
	for _, bad := range []string{h[:62], h + "00", h[:63] + "F", "x" + h[1:]} {
		if DecodeLowerHex(dst[:], bad) {
			t.Errorf("unexpected success decoding %q", bad)
		}
	}
	for c := 0; c < 256; c++ {
		lo, okLo := UnhexLower(byte(c))
		any, okAny := Unhex(byte(c))
		wantLo := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		wantAny := wantLo || 'A' <= c && c <= 'F'
		if okLo != wantLo || okAny != wantAny || (okLo && any != lo) {
			t.Errorf("unexpected hex value of %q", byte(c))
		}
	}
	if v, _ := Unhex('F'); v != 15 {
		t.Errorf("unexpected value of F; got %d; want 15", v)
	}
}

func TestEscape(t *testing.T) {
	var b []byte
	for c := 0; c < 256; c++ {
		if IsUnreserved(byte(c)) {
			b = append(b, byte(c))
		} else {
			b = AppendEscape(b, byte(c))
		}
	}
	const want = "%00%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14%15%16%17%18%19%1A%1B%1C%1D%1E%1F" +
		"%20%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_" +
		"%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~%7F"
	if got := string(b); got[:len(want)] != want || len(got) != len(want)+3*128 {
		t.Errorf("unexpected encoding of the bytes 0-255; got %q", got)
	}
}

func TestAllDigits(t *testing.T) {
	for v, want := range map[string]bool{"": true, "0123456789": true, "12a": false, "/": false, ":": false} {
		if AllDigits(v) != want || AllDigits([]byte(v)) != want {
			t.Errorf("unexpected AllDigits(%q); want %v", v, want)
		}
	}
}

func TestParseExpires(t *testing.T) {
	f := func(v string, max, want int, wantOK bool) {
		t.Helper()
		got, ok := ParseExpires(v, max)
		gotB, okB := ParseExpires([]byte(v), max)
		if got != want || ok != wantOK || gotB != got || okB != ok {
			t.Errorf("unexpected result for %q (max %d); got %d, %v; want %d, %v", v, max, got, ok, want, wantOK)
		}
	}
	f("0", 900, 0, true)
	f("60", 900, 60, true)
	f("900", 900, 900, true)
	f("604800", 604800, 604800, true)
	f("901", 900, 0, false)
	f("604801", 604800, 0, false)
	f("99999999999999999999999", 604800, 0, false)
	for _, bad := range []string{"", "060", "00", "+60", "-1", "6 0", "1e3", "1234567890"} {
		f(bad, 604800, 0, false)
	}
}

// FuzzParseExpires checks ParseExpires against strconv.Atoi on plain decimals.
func FuzzParseExpires(f *testing.F) {
	f.Add("60", 900)
	f.Add("0604800", 604800)
	f.Add("99999999999999999999", 604800)
	f.Fuzz(func(t *testing.T, v string, max int) {
		if max < 0 || max >= 1e9 {
			return
		}
		got, ok := ParseExpires(v, max)
		gotB, okB := ParseExpires([]byte(v), max)
		n, err := strconv.Atoi(v)
		plain := err == nil && v != "" && v[0] != '+' && v[0] != '-' && (len(v) == 1 || v[0] != '0')
		want, wantOK := 0, plain && n <= max
		if wantOK {
			want = n
		}
		if got != want || ok != wantOK || gotB != got || okB != ok {
			t.Fatalf("unexpected result for %q (max %d); got %d, %v; want %d, %v", v, max, got, ok, want, wantOK)
		}
	})
}
