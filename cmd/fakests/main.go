// Command fakests runs the fake AWS STS and EC2 of package fakests on loopback: an offline
// stand-in for AWS for iamgate's tests, benchmarks and a developer's laptop. See
// fakests/README.md.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

var (
	listen      = flag.String("listen", "127.0.0.1:4577", "Address of the STS/EC2 endpoint and of the admin endpoints (/admin/faults, /stats, /metrics, /healthz). Loopback by default: the fake accepts anyone who knows its fake keys. Port 0 picks a free port; see -addrFile")
	adminListen = flag.String("admin.listen", "", "Optional extra plain-HTTP address serving only the admin endpoints, handy with -tls. Empty: admin endpoints only on -listen")
	addrFile    = flag.String("addrFile", "", "Write the address actually listened on (host:port) to this file once listening, for scripts using -listen=127.0.0.1:0")
	configFile  = flag.String("config", "", "YAML file of users, roles, sessions and instances (format: fakests/README.md). Empty: no principals, every signed request gets InvalidClientTokenId")
	dryRun      = flag.Bool("dryRun", false, "Check -config and the -faults.* flags, then exit")
	logLevel    = flag.String("log.level", "info", "Log level: debug, info, warn or error. Nothing per request is logged above debug, and never a token or secret")

	useTLS   = flag.Bool("tls", false, "Serve HTTPS with a CA and leaf generated at start (leaf names: sts/ec2 endpoints of every region, localhost, 127.0.0.1). See -tls.caFile")
	caFile   = flag.String("tls.caFile", "fakests-ca.pem", "With -tls, where to write the generated CA certificate (PEM) for AWS_CA_BUNDLE, --ca-bundle or the daemon's trust store")
	tlsNames = flag.String("tls.names", "", "With -tls, extra comma-separated DNS names or IP addresses for the leaf certificate")

	clockAt     = flag.String("clock.at", "", "Start the fake's clock at this time (RFC 3339 or yyyymmddThhmmssZ) and let it run: replays recorded tokens, e.g. internal/testenv/testdata at their signed_at. Empty: the real time")
	maxSessions = flag.Int("sessions.max", fakests.DefaultMaxSessions, "Maximum temporary credentials AssumeRole holds; expired ones are dropped first when full, then AssumeRole answers Throttling")

	faultLatency   = flag.Duration("faults.latency", 0, "Fixed delay before every AWS answer")
	faultJitter    = flag.Duration("faults.jitter", 0, "Extra uniform random delay in [0, jitter) before every AWS answer")
	faultErrors    = flag.String("faults.errorRates", "", "Comma-separated Code=probability pairs answered at random, e.g. Throttling=0.1,InternalFailure=0.05. Codes: "+strings.Join(fakests.InjectableCodes(), ", "))
	faultThrottle  = flag.Float64("faults.throttleRate", 0, "Requests per second above which the excess gets 400 Throttling (token bucket of -faults.throttleBurst). 0: off")
	faultBurst     = flag.Int("faults.throttleBurst", 0, "Token bucket size of -faults.throttleRate; 0: max(1, rate)")
	faultHang      = flag.Float64("faults.hangRate", 0, "Probability that a request never gets an answer (the connection is held)")
	faultHangFor   = flag.Duration("faults.hangFor", 0, "How long a hung connection is held before a reset; 0: until the client gives up")
	faultReset     = flag.Float64("faults.resetRate", 0, "Probability that a request gets a TCP reset instead of an answer")
	faultOutage    = flag.Bool("faults.outage", false, "Answer every AWS request with 503 ServiceUnavailable (stop the process for connection refused)")
	faultActions   = flag.String("faults.actions", "", "Comma-separated actions the faults apply to (GetCallerIdentity, AssumeRole, DescribeInstances). Empty: all")
	faultsFromJSON = flag.String("faults.json", "", "Faults as the JSON of PUT /admin/faults; overrides the other -faults.* flags")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: fakests [flags]\n\nA fake AWS STS (GetCallerIdentity, AssumeRole) and EC2 (DescribeInstances) for tests; see fakests/README.md.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "fakests: %s\n", err)
		os.Exit(1)
	}
}

func run() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("cannot parse -log.level=%q: %w", *logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var cfg fakests.Config
	if *configFile != "" {
		var err error
		if cfg, err = fakests.LoadConfig(*configFile); err != nil {
			return err
		}
	}
	faults, err := faultsFromFlags()
	if err != nil {
		return err
	}
	clock, err := clockFromFlag()
	if err != nil {
		return err
	}
	opts := fakests.Options{
		Clock: clock, Logger: log, TLS: *useTLS, Faults: faults, MaxSessions: *maxSessions,
	}
	if *tlsNames != "" {
		opts.TLSNames = strings.Split(*tlsNames, ",")
	}
	srv, err := fakests.New(cfg, opts)
	if err != nil {
		return err
	}
	if *dryRun {
		log.Info("fakests: -dryRun: config and faults are valid", "users", len(cfg.Users), "roles", len(cfg.Roles),
			"sessions", len(cfg.Sessions), "instances", len(cfg.Instances))
		return nil
	}
	if *useTLS {
		if err := os.WriteFile(*caFile, srv.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("cannot write -tls.caFile=%q: %w", *caFile, err)
		}
		log.Info("fakests: wrote the generated CA", "tls.caFile", *caFile)
	}
	addr, err := srv.Start(*listen)
	if err != nil {
		return err
	}
	if *adminListen != "" {
		a, err := srv.StartAdmin(*adminListen)
		if err != nil {
			srv.Close()
			return err
		}
		log.Info("fakests: admin endpoints listening", "addr", a)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			srv.Close()
			return fmt.Errorf("cannot write -addrFile=%q: %w", *addrFile, err)
		}
	}
	log.Info("fakests: listening", "url", srv.URL(), "users", len(cfg.Users), "roles", len(cfg.Roles),
		"sessions", len(cfg.Sessions), "instances", len(cfg.Instances), "faults", faults)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info("fakests: shutting down", "signal", s.String())
	return srv.Close()
}

func faultsFromFlags() (fakests.Faults, error) {
	if *faultsFromJSON != "" {
		var f fakests.Faults
		if err := jsonUnmarshalStrict([]byte(*faultsFromJSON), &f); err != nil {
			return f, fmt.Errorf("cannot parse -faults.json: %w", err)
		}
		return f, f.Validate()
	}
	f := fakests.Faults{
		Outage: *faultOutage, ResetRate: *faultReset, HangRate: *faultHang, HangFor: fakests.Duration(*faultHangFor),
		Latency: fakests.Duration(*faultLatency), Jitter: fakests.Duration(*faultJitter),
		ThrottleRate: *faultThrottle, ThrottleBurst: *faultBurst,
	}
	if *faultErrors != "" {
		f.ErrorRates = map[string]float64{}
		for pair := range strings.SplitSeq(*faultErrors, ",") {
			code, rate, ok := strings.Cut(strings.TrimSpace(pair), "=")
			v, err := strconv.ParseFloat(rate, 64)
			if !ok || err != nil {
				return f, fmt.Errorf("cannot parse -faults.errorRates=%q: want Code=probability pairs", *faultErrors)
			}
			f.ErrorRates[code] = v
		}
	}
	if *faultActions != "" {
		f.Actions = strings.Split(*faultActions, ",")
	}
	return f, f.Validate()
}

func clockFromFlag() (func() time.Time, error) {
	if *clockAt == "" {
		return time.Now, nil
	}
	at, err := time.Parse(time.RFC3339, *clockAt)
	if err != nil {
		if at, err = time.Parse("20060102T150405Z", *clockAt); err != nil {
			return nil, fmt.Errorf("cannot parse -clock.at=%q: want RFC 3339 or yyyymmddThhmmssZ", *clockAt)
		}
	}
	start := time.Now()
	return func() time.Time { return at.Add(time.Since(start)) }, nil
}

func jsonUnmarshalStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
