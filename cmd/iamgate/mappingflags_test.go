package main

import (
	"flag"
	"strings"
	"testing"
)

// TestMappingFlags protects the names and defaults of the mapping flags that `iamgate server`
// and `iamgate explain` share through mappingFlags, and those only one of them has.
func TestMappingFlags(t *testing.T) {
	f := func(live bool, want string) {
		t.Helper()
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		var mf mappingFlags
		mf.register(fs, live)
		var got []string
		fs.VisitAll(func(fl *flag.Flag) { got = append(got, fl.Name+"="+fl.DefValue) })
		if strings.Join(got, " ") != want {
			t.Fatalf("unexpected mapping flags (live %v);\ngot  %s;\nwant %s", live, strings.Join(got, " "), want)
		}
	}
	f(true, "ec2.cacheTTL=1h0m0s ec2.endpoint= ec2.rateLimit=10 ec2.region= kubeconfig= mapping.configMap=false "+
		"mapping.configMapTimeout=30s mapping.file= mapping.pollInterval=10s")
	f(false, "ec2.endpoint= ec2.region= ec2.resolve=false kubeconfig= mapping.configMap=false mapping.file=")
}
