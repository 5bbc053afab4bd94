package ec2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/iamgate/iamgate/internal/awshttp"
	"github.com/iamgate/iamgate/mapping"
)

// DescribeInstancesAPI is the part of aws-sdk-go-v2's *ec2.Client that Resolver uses. Point
// the client at another endpoint (the fake STS's EC2 API in tests) with ec2.Options.BaseEndpoint.
// Each call gets options that wrap ec2.Options.HTTPClient (see withoutBodyWriteTo) and read
// a successful answer with iamgate's own reader (see answer.go).
type DescribeInstancesAPI interface {
	DescribeInstances(ctx context.Context, in *awsec2.DescribeInstancesInput, optFns ...func(*awsec2.Options)) (*awsec2.DescribeInstancesOutput, error)
}

// Config configures a Resolver. Zero durations and sizes take the defaults.
type Config struct {
	// Client calls DescribeInstances. Required.
	Client DescribeInstancesAPI
	// Now is the clock for the cache. Required (libraries do not read the clock themselves).
	Now func() time.Time
	// TTL is how long a name is cached; default 1h. An instance keeps its private DNS name for
	// its whole life; the TTL bounds how long a terminated instance's name is remembered.
	TTL time.Duration
	// NegativeTTL is how long "no such instance" is cached; default 30s, short because a new
	// instance may not be visible to DescribeInstances at once.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; default 50,000. When full, expired entries go first, then
	// arbitrary ones.
	MaxEntries int
	// MaxBatch is the most instance IDs in one call (values of its instance-id filter);
	// default 100. A lookup that finds no call forming goes at once; the lookups that arrive
	// while that call is in flight (or waits for the rate limiter) share the next one.
	MaxBatch int
	// RatePerSecond and Burst limit DescribeInstances calls; defaults 10 and 5 (EC2 throttles
	// Describe calls per account, shared with everything else in it).
	RatePerSecond float64
	Burst         int
	// CallTimeout bounds one DescribeInstances call including its wait for the rate limiter;
	// default 10s. A call is shared, so no single caller's context cancels it.
	CallTimeout time.Duration
	// Metrics records iamgate_ec2_lookups_total and iamgate_ec2_lookup_duration_seconds.
	Metrics *Metrics
}

// Resolver is the mapping.InstanceResolver over the EC2 API. Concurrent lookups are collapsed
// per instance and batched into DescribeInstances calls with an instance-id filter (so that one
// unknown ID costs nothing to the others of its batch); names are cached with a TTL and
// unknown IDs for NegativeTTL in a bounded cache; calls are rate-limited. It is safe for
// concurrent use and needs no Close: it starts goroutines only for calls in flight.
//
// Batching waits for no timer. One sender sends the collected IDs and, when its call ends,
// whatever was collected meanwhile, until nothing is left; a batch that reaches MaxBatch goes
// at once beside it. So a lone lookup costs one call's latency and no more, and the busier
// EC2 is (or the rate limiter), the larger the batches grow.
type Resolver struct {
	cfg     Config
	limiter *rate.Limiter

	mu      sync.Mutex
	cache   map[string]ec2Entry // instance ID → answer; guarded by mu
	pending map[string]*ec2Call // instance ID → call waiting or in flight; guarded by mu
	batch   []string            // IDs collected for the next call; guarded by mu
	sending bool                // a sender is running (see send); guarded by mu
}

type ec2Entry struct {
	dns     string
	missing bool // no such instance
	expires time.Time
}

type ec2Call struct {
	done chan struct{} // closed when dns and err are set
	dns  string
	err  error
}

// NewResolver returns a Resolver for cfg.
func NewResolver(cfg Config) (*Resolver, error) {
	if cfg.Client == nil || cfg.Now == nil {
		return nil, errors.New("cannot create EC2 resolver: Client and Now are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.TTL, time.Hour)
	def(&cfg.NegativeTTL, 30*time.Second)
	def(&cfg.CallTimeout, 10*time.Second)
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 50_000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 100
	}
	if cfg.RatePerSecond <= 0 {
		cfg.RatePerSecond = 10
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 5
	}
	return &Resolver{
		cfg:     cfg,
		limiter: rate.NewLimiter(rate.Limit(cfg.RatePerSecond), cfg.Burst),
		cache:   map[string]ec2Entry{},
		pending: map[string]*ec2Call{},
	}, nil
}

// PrivateDNSName returns the private DNS name of instance id. It returns an error matching
// mapping.ErrNotInstanceID for a malformed ID and mapping.ErrInstanceNotFound when EC2 knows no
// such instance (both denials); other errors mean EC2 could not answer. ctx bounds the caller's
// wait only.
func (r *Resolver) PrivateDNSName(ctx context.Context, id string) (string, error) {
	if !mapping.IsInstanceID(id) {
		return "", mapping.ErrNotInstanceID
	}
	r.mu.Lock()
	if e, ok := r.cache[id]; ok && r.cfg.Now().Before(e.expires) {
		r.mu.Unlock()
		r.cfg.Metrics.lookup(ec2Hit)
		if e.missing {
			return "", fmt.Errorf("%w: %s (cached)", mapping.ErrInstanceNotFound, id)
		}
		return e.dns, nil
	}
	c := r.pending[id]
	if c == nil {
		c = &ec2Call{done: make(chan struct{})}
		r.pending[id] = c
		r.batch = append(r.batch, id)
		switch {
		case len(r.batch) >= r.cfg.MaxBatch:
			ids := r.batch
			r.batch = nil
			go r.call(ids)
		case !r.sending:
			r.sending = true
			go r.send()
		}
	}
	r.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	switch {
	case c.err == nil:
		r.cfg.Metrics.lookup(ec2Fetched)
	case errors.Is(c.err, mapping.ErrInstanceNotFound):
		r.cfg.Metrics.lookup(ec2NotFound)
	default:
		r.cfg.Metrics.lookup(ec2Error)
	}
	return c.dns, c.err
}

// send calls DescribeInstances for the collected IDs, then again for those collected during
// that call, until none are left.
func (r *Resolver) send() {
	for {
		r.mu.Lock()
		ids := r.batch
		r.batch = nil
		if len(ids) == 0 {
			r.sending = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.call(ids)
	}
}

// call resolves ids with DescribeInstances and completes their pending calls. An ID absent
// from the answer does not exist (or not yet): a denial, cached for NegativeTTL.
func (r *Resolver) call(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	found, err := r.describe(ctx, ids)
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		c := r.pending[id]
		delete(r.pending, id)
		dns, ok := found[id]
		switch {
		case err != nil:
			c.err = fmt.Errorf("cannot describe EC2 instance %s: %w", id, err)
		case ok && dns != "":
			c.dns = dns
			r.store(id, ec2Entry{dns: dns, expires: now.Add(r.cfg.TTL)})
		default:
			c.err = fmt.Errorf("%w: %s", mapping.ErrInstanceNotFound, id)
			r.store(id, ec2Entry{missing: true, expires: now.Add(r.cfg.NegativeTTL)})
		}
		close(c.done)
	}
}

// maxPages bounds the DescribeInstances pages one batch may take. A batch of MaxBatch IDs fits
// one page of describePageSize; more pages would mean EC2 answers other instances too.
const (
	maxPages         = 4
	describePageSize = 1000
)

// describe looks ids up with DescribeInstances under the rate limit (one wait per page) and
// returns the private DNS name of each instance found. It asks with an instance-id filter,
// not InstanceIds: EC2 fails a whole InstanceIds call with InvalidInstanceID.NotFound when one
// ID is unknown, while a filter value that matches nothing is simply absent from the answer.
func (r *Resolver) describe(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in := &awsec2.DescribeInstancesInput{
		Filters:    []types.Filter{{Name: aws.String("instance-id"), Values: ids}},
		MaxResults: aws.Int32(describePageSize),
	}
	found := make(map[string]string, len(ids))
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("DescribeInstances answered more than %d pages for %d instance IDs", maxPages, len(ids))
		}
		out, err := r.describePage(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, res := range out.Reservations {
			for _, i := range res.Instances {
				if i.InstanceId != nil && i.PrivateDnsName != nil {
					found[*i.InstanceId] = *i.PrivateDnsName
				}
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return found, nil
		}
		in.NextToken = out.NextToken
	}
}

// describePage is one DescribeInstances call, timed and rate-limited.
func (r *Resolver) describePage(ctx context.Context, in *awsec2.DescribeInstancesInput) (*awsec2.DescribeInstancesOutput, error) {
	start := r.cfg.Now()
	defer func() { r.cfg.Metrics.observe(r.cfg.Now().Sub(start).Seconds()) }()
	if err := r.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	return r.cfg.Client.DescribeInstances(ctx, in, withoutBodyWriteTo, withAnswerReader)
}

// withoutBodyWriteTo avoids an SDK race that fails calls whose answer arrived (see
// awshttp.WithoutBodyWriteTo).
func withoutBodyWriteTo(o *awsec2.Options) {
	if o.HTTPClient != nil {
		o.HTTPClient = awshttp.WithoutBodyWriteTo(o.HTTPClient)
	}
}

// store caches e under id; r.mu is held. When the cache is full, expired entries are dropped,
// then arbitrary ones (Go's map order), so the bound holds without bookkeeping per lookup.
func (r *Resolver) store(id string, e ec2Entry) {
	if _, ok := r.cache[id]; !ok && len(r.cache) >= r.cfg.MaxEntries {
		now := r.cfg.Now()
		for k, v := range r.cache {
			if !now.Before(v.expires) {
				delete(r.cache, k)
			}
		}
		// Free a sixteenth at once so that the sweep above runs once per many inserts.
		for k := range r.cache {
			if len(r.cache) < r.cfg.MaxEntries-r.cfg.MaxEntries/16 {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[id] = e
}
