package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstructions returns the Dockerfile's instructions, one per element, with line
// continuations joined and comments dropped.
func dockerInstructions(data string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(data, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// TestDockerfile reads the Dockerfile (no Docker engine runs in CI) and checks what the manifests
// rely on: a static build of ./cmd/iamgate stamping main.version, a distroless nonroot final
// stage running as 65532 (the manifests' runAsUser), the binary at /usr/local/bin/iamgate as
// ENTRYPOINT and `server` as the default command.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatalf("cannot read Dockerfile: %s", err)
	}
	var froms []string
	var final []string // instructions of the last stage
	for _, in := range dockerInstructions(string(data)) {
		if strings.HasPrefix(in, "FROM ") {
			froms = append(froms, in)
			final = nil
		}
		final = append(final, in)
	}
	if len(froms) != 2 {
		t.Fatalf("unexpected stages; got %q; want a build stage and a final stage", froms)
	}
	if !regexp.MustCompile(`^FROM (--platform=\S+ )?golang:1\.26(\.\d+)?(@sha256:[0-9a-f]{64})? AS build$`).MatchString(froms[0]) {
		t.Errorf("unexpected build stage; got %q; want FROM golang:1.26 AS build", froms[0])
	}
	if !regexp.MustCompile(`^FROM gcr\.io/distroless/static-debian12:nonroot(@sha256:[0-9a-f]{64})?$`).MatchString(froms[1]) {
		t.Errorf("unexpected final stage; got %q; want FROM gcr.io/distroless/static-debian12:nonroot", froms[1])
	}

	build := ""
	for _, in := range dockerInstructions(string(data)) {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			build = in
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=$VERSION"`, "-o /out/iamgate", "./cmd/iamgate"} {
		if !strings.Contains(build, want) {
			t.Errorf("unexpected go build; got %q; want %q in it", build, want)
		}
	}
	// main.version is what -X sets: it must exist in the main package.
	main, err := os.ReadFile("../cmd/iamgate/main.go")
	if err != nil {
		t.Fatalf("cannot read cmd/iamgate/main.go: %s", err)
	}
	if !regexp.MustCompile(`(?m)^var version = `).Match(main) {
		t.Errorf("unexpected cmd/iamgate/main.go; got no `var version = `; want the variable -X main.version sets")
	}

	for _, want := range []string{
		"COPY --from=build /out/iamgate /usr/local/bin/iamgate",
		"USER 65532:65532",
		`ENTRYPOINT ["/usr/local/bin/iamgate"]`,
		`CMD ["server"]`,
	} {
		if !slices.Contains(final, want) {
			t.Errorf("unexpected final stage; got %q; want %q", final, want)
		}
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("cannot read .dockerignore: %s", err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".git", "bin"} {
		if !slices.Contains(lines, want) {
			t.Errorf("unexpected .dockerignore; got no %q; want it kept out of the build context", want)
		}
	}
	for _, l := range lines {
		if l == "go.mod" || l == "go.sum" || l == "cmd" || l == "*" {
			t.Errorf("unexpected .dockerignore entry; got %q; want the build inputs kept", l)
		}
	}
}
