package mapping

import (
	"errors"
	"strings"
	"testing"
)

// TestNewIdentity protects [I1] (canonical ARN, known forms and partitions only) and [I2]
// (principal ID and session name from UserId).
func TestNewIdentity(t *testing.T) {
	f := func(arn, account, userID, wantCanonical, wantPrincipal, wantSession string) {
		t.Helper()
		id, err := NewIdentity(arn, account, userID, "AKIAEXAMPLE")
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", arn, err)
		}
		if id.CanonicalARN != wantCanonical {
			t.Fatalf("unexpected canonical ARN; got %q; want %q", id.CanonicalARN, wantCanonical)
		}
		if id.PrincipalID != wantPrincipal {
			t.Fatalf("unexpected principal ID; got %q; want %q", id.PrincipalID, wantPrincipal)
		}
		if id.SessionName != wantSession {
			t.Fatalf("unexpected session name; got %q; want %q", id.SessionName, wantSession)
		}
		if id.ARN != arn || id.AccountID != account || id.UserID != userID || id.AccessKeyID != "AKIAEXAMPLE" {
			t.Fatalf("unexpected fields copied: %+v", id)
		}
	}
	f("arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0", "111122223333", "AROAEXAMPLE:i-0123456789abcdef0",
		"arn:aws:iam::111122223333:role/node", "AROAEXAMPLE", "i-0123456789abcdef0")
	f("arn:aws-us-gov:sts::111122223333:assumed-role/Admin/alice@example.com", "111122223333", "AROAEXAMPLE:alice@example.com",
		"arn:aws-us-gov:iam::111122223333:role/Admin", "AROAEXAMPLE", "alice@example.com")
	f("arn:aws:iam::111122223333:user/yaroslav", "111122223333", "AIDAEXAMPLE",
		"arn:aws:iam::111122223333:user/yaroslav", "AIDAEXAMPLE", "")
	f("arn:aws:iam::111122223333:user/dev/team/bob", "111122223333", "AIDAEXAMPLE",
		"arn:aws:iam::111122223333:user/dev/team/bob", "AIDAEXAMPLE", "")
	f("arn:aws-cn:iam::111122223333:root", "111122223333", "111122223333",
		"arn:aws-cn:iam::111122223333:root", "111122223333", "")
	f("arn:aws:sts::111122223333:federated-user/fed", "111122223333", "111122223333:fed",
		"arn:aws:sts::111122223333:federated-user/fed", "111122223333:fed", "")
	f("arn:aws:iam::111122223333:role/path/r", "111122223333", "AROAEXAMPLE:s",
		"arn:aws:iam::111122223333:role/path/r", "AROAEXAMPLE", "s")
	for _, p := range Partitions {
		f("arn:"+p+":iam::111122223333:user/u", "111122223333", "AIDA", "arn:"+p+":iam::111122223333:user/u", "AIDA", "")
	}
	// IAM paths hold any printable ASCII from ! to ~, up to 512 characters with their slashes
	// (names keep IAM's name character set); STS reports users with their path.
	for _, path := range []string{"we!rd{path}~", "a:b", "a//b", "/lead", `\x"'<>&%#?*`, strings.Repeat("p", 510)} {
		f("arn:aws:iam::111122223333:user/"+path+"/alice", "111122223333", "AIDAEXAMPLE",
			"arn:aws:iam::111122223333:user/"+path+"/alice", "AIDAEXAMPLE", "")
	}
	f("arn:aws:iam::111122223333:role/ops!/deploy", "111122223333", "AROAEXAMPLE:s",
		"arn:aws:iam::111122223333:role/ops!/deploy", "AROAEXAMPLE", "s")
	f("arn:aws:iam::111122223333:user/"+strings.Repeat("n", 64), "111122223333", "AIDAEXAMPLE",
		"arn:aws:iam::111122223333:user/"+strings.Repeat("n", 64), "AIDAEXAMPLE", "")
}

func TestNewIdentityRejects(t *testing.T) {
	f := func(arn, account, userID, wantErr string) {
		t.Helper()
		_, err := NewIdentity(arn, account, userID, "AKIA")
		if err == nil {
			t.Fatalf("expected an error for arn=%q account=%q userID=%q", arn, account, userID)
		}
		if !errors.Is(err, ErrInvalidIdentity) {
			t.Fatalf("unexpected error kind; got %v; want ErrInvalidIdentity", err)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("unexpected error; got %q; want it to contain %q", err, wantErr)
		}
	}
	f("arn:aws-moon:iam::111122223333:user/u", "111122223333", "AIDA", `unknown partition "aws-moon"`)
	f("arn:aws:iam::111122223333:group/g", "111122223333", "AIDA", `unsupported iam resource "group"`)
	f("arn:aws:sts::111122223333:assumed-role/r", "111122223333", "AROA:s", "assumed-role/ROLE/SESSION")
	f("arn:aws:sts::111122223333:assumed-role/r/s/x", "111122223333", "AROA:s", "assumed-role/ROLE/SESSION")
	f("arn:aws:s3:::bucket", "111122223333", "x", `service "s3"`)
	f("arn:aws:iam:us-east-1:111122223333:user/u", "111122223333", "AIDA", "no region")
	f("arn:aws:iam::111122223333:user/u", "11112222333", "AIDA", "not 12 digits")
	f("arn:aws:iam::111122223333:user/u", "444455556666", "AIDA", "differs from the ARN's account")
	f("arn:aws:iam::111122223333:user/u", "111122223333", "", "empty UserId")
	f("arn:aws:sts::111122223333:assumed-role/r/s", "111122223333", "AROA", "exactly one colon")
	f("arn:aws:sts::111122223333:assumed-role/r/s", "111122223333", "AROA:s:x", "exactly one colon")
	f("arn:aws:sts::111122223333:assumed-role/r/s", "111122223333", "AROA:other", `differs from the ARN's session`)
	f("arn:aws:iam::111122223333:user/", "111122223333", "AIDA", "bad user name")
	f("arn:aws:iam::111122223333:user/a\nb", "111122223333", "AIDA", "bad user name")
	f("arn:aws:iam::111122223333:user/p/a!b", "111122223333", "AIDA", "bad user name")
	f("arn:aws:iam::111122223333:user/"+strings.Repeat("n", 65), "111122223333", "AIDA", "bad user name")
	f("arn:aws:sts::111122223333:assumed-role/"+strings.Repeat("r", 65)+"/s", "111122223333", "AROA:s", "assumed-role/ROLE/SESSION")
	f("arn:aws:iam::111122223333:user//u", "111122223333", "AIDA", `bad user path "//"`)
	f("arn:aws:iam::111122223333:user/has space/u", "111122223333", "AIDA", "printable ASCII from ! to ~ only")
	f("arn:aws:iam::111122223333:user/del\x7f/u", "111122223333", "AIDA", "printable ASCII from ! to ~ only")
	f("arn:aws:iam::111122223333:user/caf\u00e9/u", "111122223333", "AIDA", "printable ASCII from ! to ~ only")
	f("arn:aws:iam::111122223333:role/"+strings.Repeat("p", 511)+"/r", "111122223333", "AROA:s", "at most 512 characters")
	f("arn:aws:iam::111122223333:rootx", "111122223333", "AIDA", "unsupported iam resource")
	f("nope", "111122223333", "AIDA", "not of the form")
}

func TestSSOPermissionSet(t *testing.T) {
	f := func(role, want string) {
		t.Helper()
		if got := ssoPermissionSet(role); got != want {
			t.Fatalf("unexpected permission set of %q; got %q; want %q", role, got, want)
		}
	}
	f("AWSReservedSSO_View_0123456789abcdef", "View")
	f("AWSReservedSSO_View_Admin_0123456789abcdef", "View_Admin")
	f("AWSReservedSSO_View_0123456789ABCDEF", "View")
	f("AWSReservedSSO_View_0123456789abcde", "")
	f("AWSReservedSSO_View-0123456789abcdef", "")
	f("AWSReservedSSO__0123456789abcdef", "")
	f("AWSReservedSSO_View_0123456789abcdeg", "")
	f("View_0123456789abcdef", "")
}

func TestIsInstanceID(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		if got := IsInstanceID(s); got != want {
			t.Fatalf("unexpected IsInstanceID(%q); got %v; want %v", s, got, want)
		}
	}
	f("i-0123456789abcdef0", true)
	f("i-01234567", true)
	f("i-0123456789ABCDEF0", false)
	f("i-0123456", false)
	f("i-012345678", false)
	f("alice", false)
	f("", false)
	f("x-01234567", false)
}
