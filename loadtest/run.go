package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rakyll/hey/requester"
)

// Load is one closed-loop run: Concurrency workers send requests back to back until
// Requests have been sent or Duration has passed, whichever comes first.
type Load struct {
	// Name labels progress lines.
	Name string
	// URL is the target, e.g. http://127.0.0.1:21362/authenticate; loopback only.
	URL string
	// Bodies are the request bodies (POSTed as application/json). Request i sends
	// Bodies[Pick(i)], or Bodies[i%len(Bodies)] when Pick is nil. Pick is called from many
	// goroutines, once per request, with i counting up from 0.
	Bodies [][]byte
	Pick   func(i int) int
	// Concurrency is the number of workers (hey's C); at least 1.
	Concurrency int
	// Requests bounds the number of requests (hey's N, rounded down to a multiple of
	// Concurrency); Duration bounds the time. Both are required.
	Requests int
	Duration time.Duration
	// Timeout bounds one request (rounded up to whole seconds, hey's unit); default 10s.
	Timeout time.Duration
	// QPS paces the run at about this many requests per second in all, spread evenly over
	// time (each worker a requester of its own with hey's rate limit, their starts
	// staggered); 0 sends as fast as the workers can.
	QPS float64
	// Bursts paces a QPS run as hey alone does: one requester whose workers' rate limiters
	// start together, so requests leave in bursts of Concurrency. For comparison only.
	Bursts bool
	// AtHalfway, when set, runs once in its own goroutine after Duration/2 (fault injection in
	// the middle of a run).
	AtHalfway func()
	// Progress receives a progress line every ProgressEvery (default 2s); nil means none.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Result is what a Load measured on the generator's side.
type Result struct {
	// Requests is the number of requests that completed, with an answer or an error.
	Requests int `json:"requests"`
	// Status counts answers by HTTP status code.
	Status map[int]int `json:"status"`
	// Errors counts requests without an answer, by error text.
	Errors map[string]int `json:"errors,omitempty"`
	// Elapsed is the wall time of the run.
	Elapsed time.Duration `json:"elapsedNs"`
	// RPS is Requests / Elapsed.
	RPS float64 `json:"rps"`
	// Latency is the distribution of answered requests, as hey measured them (from before
	// the request is built until the body is read).
	Latency Latency `json:"latency"`
	// GeneratorCPU is the CPU time (user + system) of the generating process during the run.
	GeneratorCPU time.Duration `json:"generatorCpuNs"`
	// Connections is the number of connections the generator dialed, when it counts them
	// (the webhook client does; hey does not).
	Connections int64 `json:"clientConnections,omitempty"`
}

// Run performs l with hey's requester and returns what it measured. It stops early when ctx
// is done.
func Run(ctx context.Context, l Load) (Result, error) {
	if err := CheckLoopbackURL(l.URL); err != nil {
		return Result{}, err
	}
	if len(l.Bodies) == 0 || l.Concurrency < 1 || l.Requests < 1 || l.Duration <= 0 {
		return Result{}, errors.New("cannot run load: need bodies, concurrency ≥ 1, a request count and a duration")
	}
	conc := min(l.Concurrency, l.Requests)
	n := l.Requests / conc * conc
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tmpl, err := http.NewRequest(http.MethodPost, l.URL, nil)
	if err != nil {
		return Result{}, fmt.Errorf("cannot build request for %q: %w", l.URL, err)
	}
	tmpl.Header.Set("Content-Type", "application/json")
	tmpl.Header.Set("Accept", "application/json")

	var sent atomic.Int64
	pick := l.Pick
	if pick == nil {
		pick = func(i int) int { return i % len(l.Bodies) }
	}
	newWork := func(c int, qps float64) *requester.Work {
		w := &requester.Work{
			Request: tmpl,
			RequestFunc: func() *http.Request {
				i := int(sent.Add(1) - 1)
				body := l.Bodies[pick(i)]
				r := *tmpl // shallow: the header map is shared and only read
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				return &r
			},
			N:       n / conc * c,
			C:       c,
			QPS:     qps,
			Timeout: int((timeout + time.Second - 1) / time.Second),
			Writer:  io.Discard,
		}
		w.Init()
		return w
	}
	// A paced run gives each worker a requester of its own, started 1/QPS after the one
	// before: hey starts its workers' rate limiters together, so one requester's workers send
	// in bursts of Concurrency requests, and a server that answers a burst at once and then
	// idles spends less CPU per request than under the evenly spread arrivals of the same rate.
	var works []*requester.Work
	var stagger time.Duration
	if l.QPS > 0 && !l.Bursts {
		for range conc {
			works = append(works, newWork(1, l.QPS/float64(conc)))
		}
		stagger = time.Duration(float64(time.Second) / l.QPS)
	} else {
		works = []*requester.Work{newWork(conc, l.QPS/float64(conc))} // QPS 0: as fast as they can
	}

	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			for _, w := range works {
				w.Stop()
			}
		})
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		deadline := time.NewTimer(l.Duration)
		defer deadline.Stop()
		var halfway <-chan time.Time
		if l.AtHalfway != nil {
			t := time.NewTimer(l.Duration / 2)
			defer t.Stop()
			halfway = t.C
		}
		every := l.ProgressEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				stop()
				return
			case <-deadline.C:
				stop()
				return
			case <-halfway:
				go l.AtHalfway()
			case now := <-tick.C:
				if l.Progress != nil {
					cur := sent.Load()
					fmt.Fprintf(l.Progress, "loadtest: %-14s %5.1fs/%s  %8d req  %9.0f rps\n", l.Name,
						now.Sub(start).Seconds(), l.Duration, cur, float64(cur-last)/now.Sub(lastAt).Seconds())
					last, lastAt = cur, now
				}
			}
		}
	}()

	cpu0 := selfCPU()
	start := time.Now()
	var run sync.WaitGroup
	for i, w := range works {
		run.Go(func() {
			time.Sleep(time.Duration(i) * stagger) // at most one worker's period; Stop before Run still stops it
			w.Run()
		})
	}
	run.Wait()
	elapsed := time.Since(start)
	cpu := selfCPU() - cpu0
	close(done)
	wg.Wait()

	res, err := heyResults(works)
	if err != nil {
		return Result{}, err
	}
	res.Elapsed = elapsed
	res.RPS = round3(float64(res.Requests) / elapsed.Seconds())
	res.GeneratorCPU = cpu
	return res, nil
}

// heyResults reads the per-request results hey's requester collected. hey v0.1.5 keeps them
// in unexported fields of Work.report (latencies in seconds, status codes, errors) and
// prints only a text summary with 0.1 ms resolution; reflection reads the exact values
// without modifying anything. go.mod pins hey, and TestHeyResults fails if the fields change.
func heyResults(works []*requester.Work) (Result, error) {
	res := Result{Status: map[int]int{}, Errors: map[string]int{}}
	var seconds []float64
	for _, w := range works {
		rep := reflect.ValueOf(w).Elem().FieldByName("report")
		if !rep.IsValid() || rep.Kind() != reflect.Pointer || rep.IsNil() {
			return Result{}, errors.New("cannot read hey's results: requester.Work has no report (hey version changed?)")
		}
		rep = rep.Elem()
		lats, codes, errs, num := rep.FieldByName("lats"), rep.FieldByName("statusCodes"), rep.FieldByName("errorDist"), rep.FieldByName("numRes")
		if lats.Kind() != reflect.Slice || codes.Kind() != reflect.Slice || errs.Kind() != reflect.Map || num.Kind() != reflect.Int64 {
			return Result{}, errors.New("cannot read hey's results: unexpected fields in requester's report (hey version changed?)")
		}
		res.Requests += int(num.Int())
		for i := range lats.Len() {
			seconds = append(seconds, lats.Index(i).Float())
		}
		for i := range codes.Len() {
			res.Status[int(codes.Index(i).Int())]++
		}
		for it := errs.MapRange(); it.Next(); {
			res.Errors[it.Key().String()] += int(it.Value().Int())
		}
	}
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	res.Latency = Summarize(seconds)
	return res, nil
}

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
