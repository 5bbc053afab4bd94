package loadtest

import (
	"github.com/valyala/fasthttp"
)

// TrivialAnswer is the fixed answer of TrivialHandler: an allowed v1 TokenReview of the size
// iamgate gives for a mapped IAM user.
var TrivialAnswer = []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,` +
	`"user":{"username":"arn:aws:iam::123456789012:user/bench/bench-000000","uid":"iamgate:123456789012:AIDAXXXXXXXXXXXXXXXXX",` +
	`"groups":[],"extra":{"accessKeyId":["AKIABENCH00000000000"],"arn":["arn:aws:iam::123456789012:user/bench/bench-000000"],` +
	`"canonicalArn":["arn:aws:iam::123456789012:user/bench/bench-000000"],"principalId":["AIDAXXXXXXXXXXXXXXXXX"],` +
	`"sessionName":[""],"sigs.k8s.io/aws-iam-authenticator/principalId":["AIDAXXXXXXXXXXXXXXXXX"]}}}}`)

// TrivialHandler answers every POST /authenticate with TrivialAnswer, reading the body but
// not parsing it: the fastest a TokenReview webhook on fasthttp can be, the limit each
// scenario is compared with.
// GET /healthz answers ok, for the harness to know it is up.
func TrivialHandler(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/healthz" {
		ctx.SetBodyString("ok\n")
		return
	}
	if string(ctx.Path()) != "/authenticate" || !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	_ = ctx.PostBody()
	ctx.SetContentType("application/json")
	ctx.SetBody(TrivialAnswer)
}

// NewTrivialServer is a fasthttp server for TrivialHandler with the daemon's settings.
func NewTrivialServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       TrivialHandler,
		Name:                          "trivial",
		MaxRequestBodySize:            64 << 10,
		ReadBufferSize:                8 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
	}
}
