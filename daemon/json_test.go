package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanDocument reads b as one JSON value with nothing after it, as the TokenReview codec reads
// a body.
func scanDocument(b []byte) error {
	sc := jsonScanner{buf: b}
	if err := sc.skipValue(0); err != nil {
		return err
	}
	if !sc.atEnd() {
		return errBadJSON
	}
	return nil
}

func TestJSONScanner(t *testing.T) {
	good := func(doc string) {
		t.Helper()
		if err := scanDocument([]byte(doc)); err != nil {
			t.Fatalf("unexpected error for %q: %v", doc, err)
		}
	}
	good(`{}`)
	good(` [ ] `)
	good(`"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00é"`)
	good(`0`)
	good(`-0.5e+10`)
	good(`1E-2`)
	good(`[true,false,null,{"a":[1,{"b":"c"}]}]`)
	good(`{"a":1,"a":2}`) // duplicates are the caller's business
	good(strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth))

	bad := func(doc string) {
		t.Helper()
		if err := scanDocument([]byte(doc)); err != errBadJSON {
			t.Fatalf("unexpected result for %q; got %v; want errBadJSON", doc, err)
		}
	}
	bad(``)
	bad(` `)
	bad(`{`)
	bad(`{"a"}`)
	bad(`{"a":}`)
	bad(`{"a":1,}`)
	bad(`{a:1}`)
	bad(`[1,]`)
	bad(`[1 2]`)
	bad(`{} {}`)
	bad(`'a'`)
	bad(`"a`)
	bad("\"a\nb\"")  // a control byte in a string
	bad("\"\xff\"")  // invalid UTF-8
	bad(`"\x"`)      // an unknown escape
	bad(`"\u00e"`)   // a short \u escape
	bad(`"\ud83d"`)  // a lone high surrogate
	bad(`"\ud83dx"`) // a high surrogate without its low half
	bad(`"\udc00\ud83d"`)
	bad(`"\ud83d\u0041"`)
	bad(`01`)
	bad(`1.`)
	bad(`.5`)
	bad(`-`)
	bad(`+1`)
	bad(`1e`)
	bad(`tru`)
	bad(`nul`)
	bad(`True`)
	bad(strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1))
	bad(`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`)
}

// TestJSONScannerStrings: a string without escapes is a sub-slice of the input; one with
// escapes is decoded into scratch, and a string read earlier stays valid when scratch grows
// for a later one.
func TestJSONScannerStrings(t *testing.T) {
	doc := []byte(`{"plain":"abc","escaped":"a\u0062c","long":"` + strings.Repeat(`\u0078`, 1000) + `","skipped":"\u0079"}`)
	sc := jsonScanner{buf: doc, scratch: make([]byte, 0, 4)}
	got := map[string][]byte{}
	err := sc.object(0, func(key []byte) error {
		if string(key) == "skipped" {
			return sc.skipValue(1)
		}
		s, err := sc.stringValue()
		got[string(key)] = s
		return err
	})
	if err != nil || !sc.atEnd() {
		t.Fatalf("unexpected error: %v", err)
	}
	if string(got["plain"]) != "abc" || string(got["escaped"]) != "abc" || string(got["long"]) != strings.Repeat("x", 1000) {
		t.Fatalf("unexpected strings: %q", got)
	}
	if p := got["plain"]; &p[0] != &doc[len(`{"plain":"`)] {
		t.Fatalf("unexpected copy of a string without escapes")
	}
	if len(sc.scratch) != len("abc")+1000 {
		t.Fatalf("unexpected scratch length %d: a skipped string must not keep its storage", len(sc.scratch))
	}
	// A string value where another kind of value stands is refused.
	sc = jsonScanner{buf: []byte(`{"a":1}`)}
	err = sc.object(0, func([]byte) error { _, err := sc.stringValue(); return err })
	if err != errBadJSON {
		t.Fatalf("unexpected result for a number read as a string; got %v; want errBadJSON", err)
	}
	// An error of member is object's.
	errMember := errors.New("member")
	sc = jsonScanner{buf: []byte(`{"a":1}`)}
	if err := sc.object(0, func([]byte) error { return errMember }); err != errMember {
		t.Fatalf("unexpected result; got %v; want member's error", err)
	}
}

// jsonDepth is the deepest nesting of objects and arrays in a valid document.
func jsonDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			return -1
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// FuzzJSONScanner: the scanner accepts only what encoding/json finds valid, nested at most
// maxJSONDepth deep, and all of that but invalid UTF-8 and lone UTF-16 surrogates
// (encoding/json turns them into U+FFFD; the scanner refuses them); it never panics.
func FuzzJSONScanner(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"k8s-aws-v1.abc"}}`))
	f.Add([]byte(`[1,-2.5e+3,true,false,null,{"y":[]},"a\u0041\ud83d\ude00"]`))
	f.Add([]byte(`{"a":"\ud83d"}`))
	f.Add([]byte(" \t\r\n0 "))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := scanDocument(b)
		valid := json.Valid(b) && jsonDepth(b) <= maxJSONDepth
		if err == nil && !valid {
			t.Fatalf("unexpected acceptance of %q: encoding/json finds it invalid or too deep", b)
		}
		// A \uD800-\uDFFF escape may be a lone surrogate, which only the scanner refuses.
		mayHaveSurrogate := bytes.Contains(bytes.ToLower(b), []byte(`\ud`))
		if err != nil && valid && utf8.Valid(b) && !mayHaveSurrogate {
			t.Fatalf("unexpected refusal of %q: %v; encoding/json finds it valid", b, err)
		}
	})
}

// FuzzAppendJSONString: every string renders as JSON that decodes back to itself (invalid
// UTF-8 becomes U+FFFD, as encoding/json does).
func FuzzAppendJSONString(f *testing.F) {
	f.Add("alice")
	f.Add("\x00\"\\<>&\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		var back string
		out := appendJSONString(nil, s)
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("invalid JSON %q for %q: %s", out, s, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; ToValidUTF8 replaces runs.
			want = string([]rune(s))
		}
		if back != want {
			t.Fatalf("unexpected round trip; got %q; want %q", back, want)
		}
	})
}

// FuzzPlainRun checks the eight-bytes-at-a-time scan against the obvious loop.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte("k8s-aws-v1.aHR0cHM6Ly9zdHMu\"rest"))
	f.Add([]byte("abcdefgh\x1fijk\\\xc3\xa9\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantASCII := 0, true
		for ; want < len(b); want++ {
			c := b[want]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			if c >= 0x80 {
				wantASCII = false
			}
		}
		if n, ascii := plainRun(b); n != want || ascii != wantASCII {
			t.Fatalf("unexpected result for %q; got %d %v; want %d %v", b, n, ascii, want, wantASCII)
		}
	})
}
