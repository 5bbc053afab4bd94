package mapping

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// The ConfigMap EKS reads.
const (
	AWSAuthNamespace = "kube-system"
	AWSAuthName      = "aws-auth"
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

// FetchConfigMap reads the namespace/name ConfigMap once and parses its data. A missing
// ConfigMap is an empty document with a warning, as for ConfigMapSource.
func FetchConfigMap(ctx context.Context, client kubernetes.Interface, namespace, name string) (*Document, error) {
	source := "configmap " + namespace + "/" + name
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &Document{Source: source, Warnings: []string{"the ConfigMap does not exist: no identity is mapped by it"}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot get %s: %w", source, err)
	}
	doc, err := ParseConfigMapData(source, cm.Data)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", source, err)
	}
	return doc, nil
}

// ConfigMapSource feeds a Store from the live aws-auth ConfigMap through a client-go informer
// restricted to that one object (SPEC [M1], [M5]). A deleted or missing ConfigMap maps nothing
// (as in EKS) and is logged as a warning; a bad version is refused and the last good one stays.
type ConfigMapSource struct {
	client    kubernetes.Interface
	namespace string
	name      string
	store     *Store
	log       *slog.Logger
	resync    time.Duration

	mu      sync.Mutex // serialises applies; guards seen and version
	seen    bool       // an object was delivered
	version string     // resourceVersion of the last object applied
}

// NewConfigMapSource returns the source of the namespace/name ConfigMap (normally
// kube-system/aws-auth) for store, with an informer resync every resync (0: none). It registers
// with store: the Store is not Ready until the ConfigMap (or its absence) has been read.
func NewConfigMapSource(client kubernetes.Interface, namespace, name string, store *Store, log *slog.Logger, resync time.Duration) *ConfigMapSource {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store.register(SourceConfigMap)
	return &ConfigMapSource{client: client, namespace: namespace, name: name, store: store, log: log, resync: resync}
}

func (s *ConfigMapSource) sourceName() string { return "configmap " + s.namespace + "/" + s.name }

// Run watches the ConfigMap until ctx is done. It returns an error when the informer cannot
// sync (no access to the API server, no RBAC permission to list and watch ConfigMaps in the
// namespace), else ctx's error.
func (s *ConfigMapSource) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, s.resync,
		informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.apply(obj, false) },
		UpdateFunc: func(_, obj any) { s.apply(obj, false) },
		DeleteFunc: func(obj any) { s.apply(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", s.sourceName(), err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("cannot sync the informer of %s", s.sourceName())
	}
	s.mu.Lock()
	if !s.seen {
		s.applyLocked(nil)
	}
	s.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// apply handles an informer event. The field selector restricts the watch to one name, but
// the name is checked again: not every API server (or fake) honours field selectors.
func (s *ConfigMapSource) apply(obj any, deleted bool) {
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

func (s *ConfigMapSource) applyLocked(cm *corev1.ConfigMap) {
	if cm == nil {
		s.version = ""
		s.log.Warn("the aws-auth ConfigMap does not exist: no identity is mapped by it", "configmap", s.sourceName())
		doc := &Document{Source: s.sourceName(), Warnings: []string{"the ConfigMap does not exist: no identity is mapped by it"}}
		_ = s.store.Update(SourceConfigMap, doc)
		return
	}
	if cm.ResourceVersion != "" && cm.ResourceVersion == s.version {
		s.store.unchanged(SourceConfigMap) // a resync
		return
	}
	s.version = cm.ResourceVersion
	doc, err := ParseConfigMapData(s.sourceName(), cm.Data)
	if err != nil {
		s.store.Refuse(SourceConfigMap, s.sourceName(), fmt.Errorf("cannot parse %s (resourceVersion %s): %w", s.sourceName(), cm.ResourceVersion, err))
		return
	}
	_ = s.store.Update(SourceConfigMap, doc)
}
