package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/loadtest"
)

// runColdLimit serves loadtest.ColdLimit, the limit of the cold path, until it is stopped.
func runColdLimit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coldlimit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:21365", "loopback address of the cold-path limit webhook")
	certFile := fs.String("tls.certFile", "", "PEM certificate of the webhook listener (iamgate init's cert.pem); empty serves plain HTTP")
	keyFile := fs.String("tls.keyFile", "", "PEM private key of -tls.certFile")
	stsAddr := fs.String("sts.dialOverride", "", "host:port of the fake STS (fakests -tls), on loopback. Required")
	stsCA := fs.String("sts.caFile", "", "PEM CA that signed the fake STS's certificate (fakests -tls.caFile). Required")
	stsHost := fs.String("sts.host", "sts.us-east-1.amazonaws.com", "TLS server name of the STS calls (the host the tokens are signed for)")
	clusterID := fs.String("cluster.id", "bench", "the cluster ID the tokens are signed for (sent as x-k8s-aws-id)")
	maxConns := fs.Int("sts.maxConcurrency", 64, "STS connections at most, as iamgate's -sts.maxConcurrency")
	ec2Endpoint := fs.String("ec2.endpoint", "", "https://host:port of the fake EC2 (the fake STS serves it; its certificate signed by -sts.caFile): "+
		"every EC2 node verified costs one DescribeInstances call, signed with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Empty: no EC2 calls")
	ec2Region := fs.String("ec2.region", "us-east-1", "region of the EC2 calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loadtest.CheckLoopback(*listen); err != nil {
		return fmt.Errorf("cannot use -listen: %w", err)
	}
	if err := loadtest.CheckLoopback(*stsAddr); err != nil {
		return fmt.Errorf("cannot use -sts.dialOverride: %w", err)
	}
	pem, err := os.ReadFile(*stsCA)
	if err != nil {
		return fmt.Errorf("cannot read -sts.caFile=%q: %w", *stsCA, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("cannot use -sts.caFile=%q: no PEM certificate in it", *stsCA)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on -listen=%q: %w", *listen, err)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot load -tls.certFile and -tls.keyFile: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	limit := loadtest.NewColdLimit(*stsAddr, *stsHost, roots, *clusterID, *maxConns)
	if *ec2Endpoint != "" {
		u, err := url.Parse(*ec2Endpoint)
		if err != nil {
			return fmt.Errorf("cannot use -ec2.endpoint: %w", err)
		}
		if err := loadtest.CheckLoopback(u.Host); err != nil {
			return fmt.Errorf("cannot use -ec2.endpoint: %w", err)
		}
		creds := aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}
		if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
			return fmt.Errorf("cannot use -ec2.endpoint: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
		}
		if limit, err = limit.WithEC2(*ec2Endpoint, *ec2Region, creds, roots, *maxConns); err != nil {
			return err
		}
	}
	srv := loadtest.NewColdLimitServer(limit)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "cold-path limit listening on %s (TLS %v), STS at %s\n", ln.Addr(), *certFile != "", *stsAddr)
	select {
	case <-ctx.Done():
		return srv.Shutdown()
	case err := <-errc:
		return err
	}
}
