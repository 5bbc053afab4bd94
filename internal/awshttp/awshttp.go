// Package awshttp holds what iamgate's AWS SDK clients need around their HTTP client.
package awshttp

import (
	"io"
	"net/http"
)

// Doer is the HTTP client of an aws-sdk-go-v2 service client (its Options.HTTPClient).
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// WithoutBodyWriteTo wraps next so that the transport sees request bodies without WriteTo.
//
// It works around a race between smithy-go (v1.28.9) and net/http's HTTP/1.1 transport that
// fails a call whose answer has arrived. The SDK closes the request body as soon as the HTTP
// client returns the response, while the transport's write loop, having written
// Content-Length bytes, may still drain the body (io.Copy to io.Discard, which calls the
// body's WriteTo). The SDK's closed body answers WriteTo with io.EOF; the transport takes that
// for a failed write and closes the connection under the response body the SDK is still
// reading ("deserialization failed ... use of closed network connection"). Without WriteTo the
// drain calls Read, whose io.EOF ends it cleanly. Every SDK call with a request body (EC2's
// DescribeInstances, STS's AssumeRole: both POST a form) is exposed.
func WithoutBodyWriteTo(next Doer) Doer {
	if next == nil {
		return nil
	}
	return readBodyClient{next}
}

type readBodyClient struct{ next Doer }

func (c readBodyClient) Do(req *http.Request) (*http.Response, error) {
	if _, ok := req.Body.(io.WriterTo); ok {
		req = req.WithContext(req.Context()) // a shallow copy: the SDK closes the body it built
		req.Body = struct{ io.ReadCloser }{req.Body}
	}
	return c.next.Do(req)
}
