package fakests

import (
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// serveAdmin answers the admin endpoints; false means the path is not one of them.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.Path()) {
	case "/admin/faults":
		s.adminFaults(ctx)
	case "/admin/accessKeys":
		s.adminAccessKeys(ctx)
	case "/stats":
		switch {
		case ctx.IsGet():
			writeJSON(ctx, s.Stats())
		case ctx.IsDelete():
			s.ResetStats()
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		default:
			ctx.Error("method not allowed: GET or DELETE", fasthttp.StatusMethodNotAllowed)
		}
	case "/metrics":
		s.metrics(ctx)
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
	default:
		return false
	}
	return true
}

func (s *Server) adminFaults(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsGet():
		writeJSON(ctx, s.Faults())
	case ctx.IsPut():
		var f Faults
		if err := json.Unmarshal(ctx.PostBody(), &f); err != nil {
			ctx.Error("cannot parse faults: "+err.Error(), fasthttp.StatusBadRequest)
			return
		}
		if err := s.SetFaults(f); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadRequest)
			return
		}
		s.log.Info("fakests: faults changed", "faults", string(ctx.PostBody()))
		writeJSON(ctx, s.Faults())
	case ctx.IsDelete():
		_ = s.SetFaults(Faults{})
		s.log.Info("fakests: faults cleared")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		ctx.Error("method not allowed: GET, PUT or DELETE", fasthttp.StatusMethodNotAllowed)
	}
}

// adminAccessKeys adds an IAM user's access key (POST, a User as JSON: a new user, or another
// key of a known one, as IAM allows two) or deletes one (DELETE ?accessKeyId=…): key rotation
// while clients keep signing.
func (s *Server) adminAccessKeys(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsPost():
		var u User
		if err := json.Unmarshal(ctx.PostBody(), &u); err != nil {
			ctx.Error("cannot parse the user: "+err.Error(), fasthttp.StatusBadRequest)
			return
		}
		if err := s.AddUser(u); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadRequest)
			return
		}
		s.log.Info("fakests: access key added", "arn", u.ARN, "accessKeyId", u.AccessKeyID)
		ctx.SetStatusCode(fasthttp.StatusCreated)
	case ctx.IsDelete():
		id := string(ctx.QueryArgs().Peek("accessKeyId"))
		if err := s.DeleteAccessKey(id); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusNotFound)
			return
		}
		s.log.Info("fakests: access key deleted", "accessKeyId", id)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		ctx.Error("method not allowed: POST or DELETE", fasthttp.StatusMethodNotAllowed)
	}
}

func (s *Server) newMetricsHandler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.stats.registry, promhttp.HandlerOpts{}))
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		ctx.Error("cannot encode JSON: "+err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
