package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/iamgate/iamgate/mapping"
)

// NewKubeClient returns a Kubernetes client from the kubeconfig file at path, or from the
// in-cluster service account when path is "".
func NewKubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load Kubernetes client config (-kubeconfig=%q): %w", kubeconfig, err)
	}
	cfg.UserAgent = "iamgate"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kubernetes client: %w", err)
	}
	return c, nil
}

// FetchConfigMap reads the namespace/name ConfigMap once, within DefaultConfigMapTimeout, and
// parses its data. A missing ConfigMap is an empty document with a warning, as for the
// ConfigMap source.
func FetchConfigMap(ctx context.Context, client kubernetes.Interface, namespace, name string) (*mapping.Document, error) {
	source := "configmap " + namespace + "/" + name
	ctx, cancel := context.WithTimeout(ctx, DefaultConfigMapTimeout)
	defer cancel()
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &mapping.Document{Source: source, Warnings: []string{"the ConfigMap does not exist: no identity is mapped by it"}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get %s: %w", source, err)
	}
	doc, err := mapping.ParseConfigMapData(source, cm.Data)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", source, err)
	}
	return doc, nil
}

// DefaultConfigMapTimeout is ConfigMap.Timeout when it is not set.
const DefaultConfigMapTimeout = 30 * time.Second

// ConfigMap feeds a Store from the live aws-auth ConfigMap through a client-go informer
// restricted to that one object. A deleted or missing ConfigMap maps nothing (as in EKS) and
// is logged as a warning; a version with bad parts is applied as Store.Update says.
//
// When the API server refuses or fails a list or watch (RBAC: 403; credentials: 401; any other
// error), the source reports it at once: an Error log line (then every 10th failure, or when
// the reason changes), iamgate_mapping_configmap_errors_total{reason},
// iamgate_mapping_source_failing{source="configmap"} and Store.Status (/readyz). It never
// exits: client-go retries with backoff, and the source applies the ConfigMap as soon as it
// can be read (an RBAC fix needs no restart). If the first read has not completed within
// Timeout (an API server that does not answer at all counts too), the source is reported as
// failing and stops holding the Store's readiness back: the other source's records (the
// mapping file, which may be what lets an operator in to fix RBAC) apply without it.
type ConfigMap struct {
	// Timeout bounds the first read of the ConfigMap before the source is reported as failing
	// and no longer holds readiness back; zero means DefaultConfigMapTimeout. Set it before
	// Run.
	Timeout time.Duration

	client    kubernetes.Interface
	namespace string
	name      string
	store     *Store
	log       *slog.Logger
	resync    time.Duration

	mu      sync.Mutex // serialises applies; guards seen and version
	seen    bool       // an object was delivered
	version string     // resourceVersion of the last object applied

	fmu      sync.Mutex // guards failures and reason
	failures int        // consecutive failed list or watch calls
	reason   string     // of the last failure
}

// NewConfigMap returns the source of the namespace/name ConfigMap (normally
// kube-system/aws-auth) for store, with an informer resync every resync (0: none). It registers
// with store: the Store is not Ready until the ConfigMap (or its absence) has been read.
func NewConfigMap(client kubernetes.Interface, namespace, name string, store *Store, log *slog.Logger, resync time.Duration) *ConfigMap {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store.register(KindConfigMap)
	return &ConfigMap{client: client, namespace: namespace, name: name, store: store, log: log, resync: resync}
}

func (s *ConfigMap) sourceName() string { return "configmap " + s.namespace + "/" + s.name }

// Run watches the ConfigMap until ctx is done, and returns ctx's error. API and RBAC failures
// do not end it: they are reported (see the type's documentation) and retried.
func (s *ConfigMap) Run(ctx context.Context) error {
	sel := fields.OneTermEqualSelector("metadata.name", s.name).String()
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			l, err := cms.List(ctx, o)
			s.observe(ctx, err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			w, err := cms.Watch(ctx, o)
			s.observe(ctx, err)
			return w, err
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, s.client),
		&corev1.ConfigMap{}, s.resync, cache.Indexers{})
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.apply(obj, false) },
		UpdateFunc: func(_, obj any) { s.apply(obj, false) },
		DeleteFunc: func(obj any) { s.apply(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", s.sourceName(), err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		inf.RunWithContext(ctx)
	}()
	defer wg.Wait()

	synced := make(chan struct{})
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
			close(synced)
		}
	}()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultConfigMapTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-synced:
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		s.firstReadTimedOut(timeout)
		select {
		case <-synced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	if !s.seen {
		s.applyLocked(nil)
	}
	s.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// observe reports the outcome of one list or watch call.
func (s *ConfigMap) observe(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // shutting down
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if err == nil {
		if s.failures > 0 {
			s.log.Info("the aws-auth ConfigMap can be read again", "configmap", s.sourceName(), "failedAttempts", s.failures)
			s.failures, s.reason = 0, ""
			s.store.sourceFailing(KindConfigMap, s.sourceName(), "", false)
		}
		return
	}
	label, reason := describeAPIError(err)
	s.failures++
	if s.failures == 1 || s.failures%10 == 0 || reason != s.reason {
		s.log.Error("cannot read the aws-auth ConfigMap; retrying, the last good mapping stays live", "configmap", s.sourceName(),
			"reason", label, "failedAttempts", s.failures, "error", err)
	}
	s.reason = reason
	// The source is marked failing before the error is counted: whoever sees the count
	// (a scrape, a test) sees the gauge and /readyz say so too.
	s.store.sourceFailing(KindConfigMap, s.sourceName(), reason, false)
	s.store.metrics.configMapError(label)
}

// firstReadTimedOut reports that the ConfigMap has not been read within timeout.
func (s *ConfigMap) firstReadTimedOut(timeout time.Duration) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	reason := s.reason
	noAnswer := s.failures == 0 // no call has even failed: the API server does not answer
	if noAnswer {
		reason = "timeout: no answer from the API server within " + timeout.String()
		s.failures++
	}
	s.reason = reason
	s.log.Error("the aws-auth ConfigMap could not be read in time; iamgate keeps retrying and serves the other mapping sources without it",
		"configmap", s.sourceName(), "timeout", timeout, "reason", reason)
	s.store.sourceFailing(KindConfigMap, s.sourceName(), reason, true)
	if noAnswer {
		s.store.metrics.configMapError(cmTimeout)
	}
}

// describeAPIError returns the metric label of err and a description for /readyz with nothing
// secret in it (no token; the API server's URL and iamgate's identity are in the log only).
func describeAPIError(err error) (label, reason string) {
	var status apierrors.APIStatus
	code := 0
	if errors.As(err, &status) {
		code = int(status.Status().Code)
	}
	var nerr net.Error
	switch {
	case apierrors.IsForbidden(err):
		return cmForbidden, "forbidden (HTTP 403): iamgate's identity may not list and watch ConfigMaps in the namespace; grant list and watch on configmaps (resourceNames: aws-auth) in RBAC"
	case apierrors.IsUnauthorized(err):
		return cmUnauthorized, "unauthorized (HTTP 401): the API server does not accept iamgate's credentials"
	case apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		return cmTimeout, "timeout talking to the API server"
	case code != 0:
		return cmOther, fmt.Sprintf("the API server answered HTTP %d (%s)", code, apierrors.ReasonForError(err))
	}
	return cmOther, "cannot reach the API server (see the log)"
}

// apply handles an informer event. The field selector restricts the watch to one name, but
// the name is checked again: not every API server (or fake) honours field selectors.
func (s *ConfigMap) apply(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Name != s.name || cm.Namespace != s.namespace {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = true
	if deleted {
		cm = nil
	}
	s.applyLocked(cm)
}

func (s *ConfigMap) applyLocked(cm *corev1.ConfigMap) {
	if cm == nil {
		s.version = ""
		s.log.Warn("the aws-auth ConfigMap does not exist: no identity is mapped by it", "configmap", s.sourceName())
		doc := &mapping.Document{Source: s.sourceName(), Warnings: []string{"the ConfigMap does not exist: no identity is mapped by it"}}
		_ = s.store.Update(KindConfigMap, doc)
		return
	}
	if cm.ResourceVersion != "" && cm.ResourceVersion == s.version {
		s.store.unchanged(KindConfigMap) // a resync
		return
	}
	s.version = cm.ResourceVersion
	doc, err := mapping.ParseConfigMapData(s.sourceName(), cm.Data)
	if err != nil {
		s.store.Refuse(KindConfigMap, s.sourceName(), fmt.Errorf("cannot parse %s (resourceVersion %s): %w", s.sourceName(), cm.ResourceVersion, err))
		return
	}
	_ = s.store.Update(KindConfigMap, doc)
}
