package ec2

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// instanceName is what the resolver takes from one instance of an answer.
type instanceName struct {
	ID, DNS *string
}

func (n instanceName) String() string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	return s(n.ID) + "=" + s(n.DNS)
}

// names lists the instance IDs and private DNS names of out, in order, and its next token.
func names(out *awsec2.DescribeInstancesOutput) (got []instanceName, next string) {
	for _, res := range out.Reservations {
		for _, i := range res.Instances {
			got = append(got, instanceName{i.InstanceId, i.PrivateDnsName})
		}
	}
	return got, aws.ToString(out.NextToken)
}

// readNames is names of readDescribeInstances's reading of body.
func readNames(body []byte) ([]instanceName, string, error) {
	instances, next, err := readDescribeInstances(body)
	if err != nil {
		return nil, "", err
	}
	got, _ := names(&awsec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: instances}}})
	return got, next, nil
}

// answerDoer answers every request with status and body.
type answerDoer struct {
	status int
	body   []byte
}

func (d answerDoer) Do(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: d.status, Header: http.Header{"Content-Type": {"text/xml;charset=UTF-8"}},
		Body: io.NopCloser(bytes.NewReader(d.body))}, nil
}

// sdkClient is the real SDK client of describeWith; each call sets its answer.
var sdkClient = awsec2.New(awsec2.Options{
	Region:       "us-east-1",
	BaseEndpoint: aws.String("https://ec2.test"),
	Credentials:  credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
	Retryer:      aws.NopRetryer{},
})

// describeWith sends one DescribeInstances call with the real SDK client, answered with
// status and body, and reads the answer with the SDK's decoder or, with optFns, otherwise.
func describeWith(status int, body []byte, optFns ...func(*awsec2.Options)) (*awsec2.DescribeInstancesOutput, error) {
	answer := func(o *awsec2.Options) { o.HTTPClient = answerDoer{status, body} }
	return sdkClient.DescribeInstances(context.Background(), &awsec2.DescribeInstancesInput{}, append(optFns, answer)...)
}

func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/describe-instances.xml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadDescribeInstances reads an answer in EC2's full shape (nested private DNS names of
// network interfaces, tags with references, a terminated instance without a name, a
// namespaced attribute, two reservations, a next page) and gets what the SDK's decoder gets.
func TestReadDescribeInstances(t *testing.T) {
	body := readFixture(t)
	got, next, err := readNames(body)
	if err != nil {
		t.Fatalf("cannot read the fixture: %s", err)
	}
	want := "[" + strings.Join([]string{
		`"i-0123456789abcdef0"="ip-10-0-1-23.ec2.internal"`,
		`"i-0123456789abcdef1"="ip-10-0-2-7.ec2.internal"`,
		`"i-0aaaaaaaaaaaaaaa1"=""`,
		`"i-0bbbbbbbbbbbbbbb2"="i-0bbbbbbbbbbbbbbb2.us-east-1.compute.internal"`,
	}, " ") + "]"
	if s := fmt.Sprint(got); s != want || next != "eyJ2IjoiMiIsImMiOiJleGFtcGxlIn0=" {
		t.Fatalf("unexpected answer:\n got %s next %q\nwant %s next %q", s, next, want, "eyJ2IjoiMiIsImMiOiJleGFtcGxlIn0=")
	}

	sdk, err := describeWith(http.StatusOK, body)
	if err != nil {
		t.Fatalf("the SDK cannot read the fixture: %s", err)
	}
	sdkGot, sdkNext := names(sdk)
	if fmt.Sprint(sdkGot) != want || sdkNext != next {
		t.Fatalf("the SDK's decoder reads otherwise:\n got %v next %q\nwant %s next %q", sdkGot, sdkNext, want, next)
	}
}

// TestReadDescribeInstancesRejects: what EC2 does not write is refused with ErrAnswer.
func TestReadDescribeInstancesRejects(t *testing.T) {
	const pre = `<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`
	const post = `</DescribeInstancesResponse>`
	instance := func(inner string) string {
		return pre + `<reservationSet><item><instancesSet><item>` + inner + `</item></instancesSet></item></reservationSet>` + post
	}
	deep := pre + strings.Repeat("<a>", maxAnswerDepth) + strings.Repeat("</a>", maxAnswerDepth) + post
	for _, tc := range []struct{ name, body string }{
		{"empty", ""},
		{"white space only", " \n"},
		{"not UTF-8", pre + "<requestId>\xff</requestId>" + post},
		{"another root", `<Response><Errors/></Response>`},
		{"two roots", pre + post + pre + post},
		{"text after the root", pre + post + "x"},
		{"text before the root", "x" + pre + post},
		{"unclosed", pre + "<reservationSet>"},
		{"end tag of another element", pre + "<reservationSet></item>" + post},
		{"end tag at the top", "</DescribeInstancesResponse>"},
		{"comment", pre + "<!-- hi -->" + post},
		{"CDATA", pre + "<requestId><![CDATA[x]]></requestId>" + post},
		{"DOCTYPE", `<!DOCTYPE DescribeInstancesResponse>` + pre + post},
		{"processing instruction", pre + `<?php x ?>` + post},
		{"declaration not first", " " + pre + post},
		{"XML 1.1", `<?xml version="1.1"?><DescribeInstancesResponse/>`},
		{"another encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><DescribeInstancesResponse/>`},
		{"declaration without version", `<?xml encoding="UTF-8"?><DescribeInstancesResponse/>`},
		{"declaration with two versions", `<?xml version="1.0" version="1.0"?><DescribeInstancesResponse/>`},
		{"unknown entity", pre + "<requestId>&nbsp;</requestId>" + post},
		{"unterminated reference", pre + "<requestId>a & b</requestId>" + post},
		{"NUL reference", pre + "<requestId>&#0;</requestId>" + post},
		{"surrogate reference", pre + "<requestId>&#xD800;</requestId>" + post},
		{"reference beyond Unicode", pre + "<requestId>&#x110000;</requestId>" + post},
		{"control character", pre + "<requestId>\x01</requestId>" + post},
		{"U+FFFE", pre + "<requestId>\uFFFE</requestId>" + post},
		{"'<' in an attribute", `<DescribeInstancesResponse a="<"/>`},
		{"unquoted attribute", `<DescribeInstancesResponse a=b/>`},
		{"attribute without value", `<DescribeInstancesResponse a/>`},
		{"attributes without space", `<DescribeInstancesResponse a="1"b="2"/>`},
		{"attribute not closed", `<DescribeInstancesResponse a="1/>`},
		{"prefixed element", pre + "<ec2:requestId>x</ec2:requestId>" + post},
		{"space after '<'", pre + "< requestId>x</requestId>" + post},
		{"end tag with attribute", pre + `<requestId>x</requestId a="1">` + post},
		{"too deep", deep},
		{"long root name", "<" + strings.Repeat("a", 1<<20) + "/>"},
		{"long end tag", pre + "</" + strings.Repeat("a", 1<<20) + ">"},
		{"long declaration value", `<?xml version="` + strings.Repeat("1", 1<<20) + `"?><DescribeInstancesResponse/>`},
		{"too long", pre + "<requestId>" + strings.Repeat("x", maxAnswerBytes) + "</requestId>" + post},
		{"element inside instanceId", instance("<instanceId><b/>i-0123456789abcdef0</instanceId>")},
		{"two instanceIds", instance("<instanceId>i-0123456789abcdef0</instanceId><instanceId>i-0123456789abcdef1</instanceId>")},
		{"two privateDnsNames", instance("<privateDnsName>a</privateDnsName><PrivateDnsName>b</PrivateDnsName>")},
		{"two nextTokens", pre + "<nextToken>a</nextToken><nextToken>b</nextToken>" + post},
		{"newline in privateDnsName", instance("<privateDnsName>ip-10-0-0-1\n.ec2.internal</privateDnsName>")},
		{"tab reference in instanceId", instance("<instanceId>i-&#9;</instanceId>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readDescribeInstances([]byte(tc.body))
			if err != nil && len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes: the answer's names and values must be cut", len(err.Error()))
			}
			if !errors.Is(err, ErrAnswer) {
				t.Fatalf("unexpected error; got %v; want ErrAnswer", err)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

// TestAnswerReaderInTheSDKPath: with the resolver's option, a successful answer goes to
// readDescribeInstances (an answer the SDK would read but iamgate refuses fails the call
// with ErrAnswer), and an error answer still to the SDK's decoder (its typed error, which the
// SDK's retryer reads, carries EC2's code).
func TestAnswerReaderInTheSDKPath(t *testing.T) {
	withComment := bytes.Replace(readFixture(t), []byte("<reservationSet>"), []byte("<!-- x --><reservationSet>"), 1)
	if _, err := describeWith(http.StatusOK, withComment); err != nil {
		t.Fatalf("the SDK's decoder should read an answer with a comment: %s", err)
	}
	if _, err := describeWith(http.StatusOK, withComment, withAnswerReader); !errors.Is(err, ErrAnswer) {
		t.Fatalf("unexpected error with the answer reader; got %v; want ErrAnswer", err)
	}
	out, err := describeWith(http.StatusOK, readFixture(t), withAnswerReader)
	if err != nil {
		t.Fatal(err)
	}
	if got, next := names(out); len(got) != 4 || next == "" {
		t.Fatalf("unexpected answer through the SDK; got %v, next %q", got, next)
	}

	throttled := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>`)
	_, err = describeWith(http.StatusServiceUnavailable, throttled, withAnswerReader)
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "RequestLimitExceeded" {
		t.Fatalf("unexpected error for a throttled call; got %v; want the SDK's RequestLimitExceeded", err)
	}

	// A body cut short is a read error, not a partial answer.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(readFixture(t)[:200])
	}))
	defer srv.Close()
	client := newEC2Client(srv.URL)
	if _, err := client.DescribeInstances(context.Background(), &awsec2.DescribeInstancesInput{}, withAnswerReader); err == nil {
		t.Fatal("expected an error for a truncated answer")
	}
}

// FuzzReadDescribeInstances: no input panics the reader; what it accepts is well-formed XML
// to encoding/xml, and where the SDK's decoder reads it too, both find the same instances
// and next token. (The SDK also refuses values of fields iamgate does not read, such as a
// malformed launchTime; iamgate need not.)
func FuzzReadDescribeInstances(f *testing.F) {
	f.Add(readFixture(f))
	f.Add([]byte(`<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><privateDnsName>a&amp;b</privateDnsName></item></instancesSet></item></reservationSet><nextToken/></DescribeInstancesResponse>`))
	f.Add([]byte(`<?xml version="1.0"?><DescribeInstancesResponse a='&#x3C;'><ReservationSet><ITEM><instancesset><Item><InstanceId>i-2</InstanceId></Item></instancesset></ITEM></ReservationSet></DescribeInstancesResponse>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, next, err := readNames(body)
		if err != nil {
			if !errors.Is(err, ErrAnswer) {
				t.Fatalf("error without ErrAnswer: %s", err)
			}
			return
		}
		d := xml.NewDecoder(bytes.NewReader(body))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("accepted what encoding/xml refuses: %s", err)
			}
		}
		sdk, err := describeWith(http.StatusOK, body)
		if err != nil {
			return
		}
		want, wantNext := names(sdk)
		if !reflect.DeepEqual(got, want) || next != wantNext {
			t.Fatalf("read otherwise than the SDK:\n got %v next %q\nwant %v next %q", got, next, want, wantNext)
		}
	})
}

// BenchmarkDescribeInstancesAnswer reads an answer of 100 instances in EC2's full shape with
// readDescribeInstances and, for comparison, through the SDK client with its own decoder and
// with the answer reader.
func BenchmarkDescribeInstancesAnswer(b *testing.B) {
	fixture := readFixture(b)
	i := bytes.Index(fixture, []byte("<reservationSet>")) + len("<reservationSet>")
	j := bytes.Index(fixture, []byte("</reservationSet>"))
	var body bytes.Buffer
	body.Write(fixture[:i])
	for body.Len() < 100*len(fixture[i:j])/4 { // the fixture holds 4 instances
		body.Write(fixture[i:j])
	}
	body.Write(fixture[j:])
	b.Run("reader", func(b *testing.B) {
		b.SetBytes(int64(body.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := readDescribeInstances(body.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name string
		opts []func(*awsec2.Options)
	}{{"sdk-call", nil}, {"sdk-call-with-reader", []func(*awsec2.Options){withAnswerReader}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := describeWith(http.StatusOK, body.Bytes(), c.opts...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
