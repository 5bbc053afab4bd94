package daemon

import (
	"sync/atomic"
	"time"
)

// logLimiter allows at most perSecond log lines per wall-clock second, so that a flood of bad
// tokens cannot flood the log. Safe for concurrent use; allow does not allocate.
type logLimiter struct {
	perSecond int64
	window    atomic.Int64 // unix second of the current window
	count     atomic.Int64 // lines allowed in the current window
}

func newLogLimiter(perSecond int64) *logLimiter { return &logLimiter{perSecond: perSecond} }

func (l *logLimiter) allow() bool {
	now := time.Now().Unix()
	if w := l.window.Load(); w != now && l.window.CompareAndSwap(w, now) {
		l.count.Store(0)
	}
	return l.count.Add(1) <= l.perSecond
}
