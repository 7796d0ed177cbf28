package webhook

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// reviewMemory is what one request of ServeHTTP allocates, kept for the next request
// once the response is written. Nothing decoded from the request refers to body: the
// decoder copies every string it keeps.
type reviewMemory struct {
	body   []byte
	review []byte
	patch  []byte
	req    reviewRequest
	decoderMemory
}

// decoderMemory is what a podDecoder may reuse instead of allocating.
type decoderMemory struct {
	reader              jsonReader
	pod                 policy.InjectionPod
	envs                []policy.InjectionEnvVar
	containers          []policy.InjectionContainer
	volumes             []corev1.Volume
	mounts              []corev1.VolumeMount
	labels, annotations map[string]string
	// namespace is the pod's Namespace, as the cache returned it.
	namespace corev1.Namespace
}

// Above these sizes a request's memory is left to the garbage collector, so that one
// large pod does not keep its memory in the pool.
const (
	maxPooledBytes = 256 << 10
	maxPooledItems = 4 << 10
	maxPooledMap   = 64
)

// reviewMemoryPool holds the reviewMemory of finished requests.
type reviewMemoryPool struct{ pool sync.Pool }

func (p *reviewMemoryPool) get() *reviewMemory {
	if m, ok := p.pool.Get().(*reviewMemory); ok {
		return m
	}
	return &reviewMemory{}
}

// put keeps m for another request.
func (p *reviewMemoryPool) put(m *reviewMemory) {
	if cap(m.body) > maxPooledBytes || cap(m.review) > maxPooledBytes || cap(m.patch) > maxPooledBytes ||
		cap(m.reader.scratch) > maxPooledBytes ||
		cap(m.envs) > maxPooledItems || cap(m.containers) > maxPooledItems ||
		cap(m.volumes) > maxPooledItems || cap(m.mounts) > maxPooledItems {
		return
	}
	// Not the cache's labels: they may change.
	m.namespace = corev1.Namespace{}
	m.req = reviewRequest{}
	m.body = m.body[:0]
	if len(m.labels) > maxPooledMap {
		m.labels = nil
	}
	if len(m.annotations) > maxPooledMap {
		m.annotations = nil
	}
	p.pool.Put(m)
}

// ServeHTTP answers AdmissionReview v1 requests for pods.
// A panic answers 500 (the API server then applies the failure policy) and leaves the
// request's memory to the garbage collector rather than to the next request.
func (h *SandboxPodInjector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mem := h.memory.get()
	defer func() {
		if p := recover(); p != nil {
			h.metrics.requests.WithLabelValues("error").Inc()
			http.Error(w, "sandbox-webhook: internal error while deciding on the pod", http.StatusInternalServerError)
			return
		}
		h.memory.put(mem)
	}()
	h.serveHTTP(w, r, mem)
}

func (h *SandboxPodInjector) serveHTTP(w http.ResponseWriter, r *http.Request, mem *reviewMemory) {
	ctx, cancel := reviewContext(w, r)
	defer cancel()
	var err error
	mem.body, err = readReviewBody(mem.body, r)
	if err != nil {
		h.metrics.requests.WithLabelValues("error").Inc()
		writeReviewWith(w, "", admission.Errored(http.StatusBadRequest, err), mem)
		return
	}
	release, err := h.gate.enter(ctx)
	if err != nil {
		h.metrics.requests.WithLabelValues("error").Inc()
		refuseBusy(w, err)
		return
	}
	defer release()
	req := &mem.req
	// The API server sends the operation and kind before the object: a pod CREATE is
	// read in the same pass as the review.
	d := podDecoder{r: &mem.reader, cfg: h.cfg}
	d.reuse(&mem.decoderMemory)
	defer d.done()
	var pod *policy.InjectionPod
	var podErr error
	err = mem.reader.readAdmissionReview(mem.body, req, func(req *reviewRequest) (bool, error) {
		if !isPodCreate(req) {
			return false, nil
		}
		pod, podErr = d.pod, d.podObject()
		return true, podErr
	})
	switch {
	case podErr != nil:
		writeReviewWith(w, req.UID, h.done("error", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", podErr))), mem)
		return
	case err != nil:
		h.metrics.requests.WithLabelValues("error").Inc()
		writeReviewWith(w, "", admission.Errored(http.StatusBadRequest, err), mem)
		return
	}
	if !isPodCreate(req) || len(req.Object) == 0 {
		writeReviewWith(w, req.UID, h.done("ignored", admission.Allowed("")), mem)
		return
	}
	if pod == nil { // the object came before what says it is a pod CREATE
		if pod, err = d.decode(req.Object); err != nil {
			writeReviewWith(w, req.UID, h.done("error", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err))), mem)
			return
		}
	}
	writeReviewWith(w, req.UID, h.handlePod(ctx, req.Namespace, pod, &mem.namespace), mem)
}

func isPodCreate(req *reviewRequest) bool {
	return req.Operation == admissionv1.Create && req.Kind.Kind == "Pod" && req.SubResource == ""
}

// decodeInjectionPod reads what policy.Inject needs from a pod's JSON, and skips the
// rest. Field names match exactly, as the API server matches them: a field the API
// server ignores ("Env", "ENV") is ignored here too. Volumes and mounts that could be
// the token's are decoded whole, so that policy compares all of their content.
func decodeInjectionPod(raw []byte, cfg *policy.Config) (*policy.InjectionPod, error) {
	d := podDecoder{r: &jsonReader{}, cfg: cfg}
	return d.decode(raw)
}

// Bounds on the lists of one pod, so that the memory a pod takes stays a small multiple
// of its size: an empty container is 3 bytes of JSON and a hundred of memory. Real pods
// are far below them; a pod over them is refused, not admitted uninspected.
const (
	maxPodContainers = 1000
	maxPodVolumes    = 1000
	maxPodMounts     = 10000
	maxPodEnv        = 100000
	maxPodEnvFrom    = 10000
)

// podDecoder reads a pod through a jsonReader. The lists of all containers share one
// array per kind of item, taken from mem when there is one.
type podDecoder struct {
	r          *jsonReader
	cfg        *policy.Config
	pod        *policy.InjectionPod
	envs       []policy.InjectionEnvVar
	containers []policy.InjectionContainer
	volumes    []corev1.Volume
	mounts     []corev1.VolumeMount
	mem        *decoderMemory
	// envFromCount counts the envFrom sources of all containers, for their bound.
	envFromCount int
}

// reuse lets d decode into m's memory, which must hold nothing still in use. Clearing
// what the last request used keeps the arrays zero beyond their length.
func (d *podDecoder) reuse(m *decoderMemory) {
	clear(m.envs)
	clear(m.containers)
	clear(m.volumes)
	clear(m.mounts)
	d.envs, d.containers, d.volumes, d.mounts = m.envs[:0], m.containers[:0], m.volumes[:0], m.mounts[:0]
	m.pod = policy.InjectionPod{}
	d.pod = &m.pod
	d.mem = m
}

// done hands back to d.mem the arrays that d allocated.
func (d *podDecoder) done() {
	if d.mem != nil {
		d.mem.envs, d.mem.containers, d.mem.volumes, d.mem.mounts = d.envs, d.containers, d.volumes, d.mounts
	}
}

// decode reads the pod of raw, a document of its own.
func (d *podDecoder) decode(raw []byte) (*policy.InjectionPod, error) {
	d.r.reset(raw)
	defer d.r.release()
	if err := d.r.document(d.podObject); err != nil {
		return nil, err
	}
	return d.pod, nil
}

// podObject reads the pod that comes next into d.pod.
func (d *podDecoder) podObject() error {
	if d.pod == nil {
		d.pod = &policy.InjectionPod{}
	}
	r, pod, cfg := d.r, d.pod, d.cfg
	var spareLabels, spareAnnotations *map[string]string
	if d.mem != nil {
		spareLabels, spareAnnotations = &d.mem.labels, &d.mem.annotations
	}
	return r.object(func(name []byte) error {
		switch string(name) {
		case "metadata":
			return r.object(func(name []byte) error {
				switch string(name) {
				case "namespace":
					return r.stringInto(&pod.Namespace)
				case "labels":
					return d.stringMap(&pod.Labels, spareLabels, func(key []byte, kept int) bool {
						return string(key) == cfg.Sandboxes.SandboxLabel || string(key) == cfg.Sandboxes.InjectLabel
					})
				case "annotations":
					// Policy reads its own annotation, and whether there are others.
					return d.stringMap(&pod.Annotations, spareAnnotations, func(key []byte, kept int) bool {
						return string(key) == policy.AnnotationInjected || kept == 0
					})
				}
				return r.skip()
			})
		case "spec":
			return r.object(func(name []byte) error {
				switch string(name) {
				case "serviceAccountName":
					return r.stringInto(&pod.ServiceAccountName)
				case "serviceAccount":
					return r.stringInto(&pod.DeprecatedServiceAccount)
				case "volumes":
					return d.volumeList(&pod.Volumes, cfg)
				case "initContainers":
					return d.containerList(&pod.InitContainers, cfg)
				case "containers":
					return d.containerList(&pod.Containers, cfg)
				}
				return r.skip()
			})
		}
		return r.skip()
	})
}

// stringMap reads an object of strings into dst, adding to a map already there, and
// keeps the members keep accepts (kept is how many it kept so far): a pod may carry
// hundreds of thousands of labels before the API server validates it, and policy reads
// a few. null sets dst to nil. A new map is *spare, emptied, when there is one; a map
// made here becomes *spare.
func (d *podDecoder) stringMap(dst, spare *map[string]string, keep func(key []byte, kept int) bool) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	if *dst == nil {
		switch {
		case spare == nil:
			*dst = map[string]string{}
		case *spare != nil:
			clear(*spare)
			*dst = *spare
		default:
			*dst = map[string]string{}
			*spare = *dst
		}
	}
	m := *dst
	return d.r.object(func(name []byte) error {
		if !keep(name, len(m)) {
			_, _, err := d.r.str()
			return err
		}
		key := string(name)
		var v string
		err := d.r.stringInto(&v)
		m[key] = v
		return err
	})
}

// element reads one array element with read, and returns the element's JSON.
func (d *podDecoder) element(read func() error) ([]byte, error) {
	start := int(d.r.dec.InputOffset())
	if err := read(); err != nil {
		return nil, err
	}
	end := int(d.r.dec.InputOffset())
	return bytes.TrimLeft(d.r.doc[start:end], " \t\r\n,"), nil
}

func (d *podDecoder) volumeList(dst *[]corev1.Volume, cfg *policy.Config) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	start := len(d.volumes)
	err := d.r.array(func() error {
		var v corev1.Volume
		raw, err := d.element(func() error {
			return d.r.object(func(name []byte) error {
				if string(name) == "name" {
					return d.r.stringInto(&v.Name)
				}
				return d.r.skip()
			})
		})
		if err != nil {
			return err
		}
		if v.Name == cfg.Token.VolumeName {
			// Only this volume is decoded whole.
			var whole corev1.Volume
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &whole); err != nil {
				return fmt.Errorf("volume %q: %w", cfg.Token.VolumeName, err)
			}
			v = whole
		}
		if len(d.volumes) == maxPodVolumes {
			return tooMany("volumes", maxPodVolumes)
		}
		d.volumes = append(d.volumes, v)
		return nil
	})
	*dst = part(d.volumes, start, *dst)
	return err
}

// part is items[start:] as a list of its own, or dst emptied when there are none.
func part[T any](items []T, start int, dst []T) []T {
	if n := len(items); n > start {
		return items[start:n:n]
	}
	return dst[:0]
}

func (d *podDecoder) containerList(dst *[]policy.InjectionContainer, cfg *policy.Config) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	start := len(d.containers)
	err := d.r.array(func() error {
		var c policy.InjectionContainer
		err := d.r.object(func(name []byte) error {
			switch string(name) {
			case "name":
				return d.r.stringInto(&c.Name)
			case "imagePullPolicy":
				return d.r.stringInto((*string)(&c.ImagePullPolicy))
			case "env":
				return d.envList(&c.Env)
			case "volumeMounts":
				return d.mountList(&c.VolumeMounts, cfg)
			case "envFrom":
				return d.envFromList(&c.EnvFrom)
			}
			return d.r.skip()
		})
		if len(d.containers) == maxPodContainers {
			return tooMany("containers and init containers", maxPodContainers)
		}
		d.containers = append(d.containers, c)
		return err
	})
	*dst = part(d.containers, start, *dst)
	return err
}

// envFromList reads a container's envFrom sources: the prefix and the name of the
// ConfigMap or Secret.
func (d *podDecoder) envFromList(dst *[]policy.InjectionEnvFromSource) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	var out []policy.InjectionEnvFromSource
	refName := func(into *string) error {
		return d.r.object(func(name []byte) error {
			if string(name) == "name" {
				return d.r.stringInto(into)
			}
			return d.r.skip()
		})
	}
	err := d.r.array(func() error {
		if d.envFromCount == maxPodEnvFrom {
			return tooMany("envFrom sources in all containers", maxPodEnvFrom)
		}
		d.envFromCount++
		var src policy.InjectionEnvFromSource
		err := d.r.object(func(name []byte) error {
			switch string(name) {
			case "prefix":
				return d.r.stringInto(&src.Prefix)
			case "configMapRef":
				return refName(&src.ConfigMapName)
			case "secretRef":
				return refName(&src.SecretName)
			}
			return d.r.skip()
		})
		out = append(out, src)
		return err
	})
	*dst = out
	return err
}

// envList reads an env list. Policy reads the names and values of the env vars it
// manages or forbids, and where the others are: their names and values are not copied.
func (d *podDecoder) envList(dst *[]policy.InjectionEnvVar) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	start := len(d.envs)
	err := d.r.array(func() error {
		if len(d.envs) == maxPodEnv {
			return tooMany("env vars in all containers", maxPodEnv)
		}
		return d.envVar()
	})
	*dst = d.envs[start:len(d.envs):len(d.envs)]
	return err
}

// envVar reads one env var.
func (d *podDecoder) envVar() error {
	var e policy.InjectionEnvVar
	var value []byte // the value's JSON, until the name says whether it is read
	relevant := false
	err := d.r.object(func(name []byte) error {
		switch string(name) {
		case "name":
			s, ok, err := d.r.str()
			if ok {
				relevant = d.readsEnv(s)
				e.Name = ""
				if relevant {
					e.Name = string(s)
				}
			}
			return err
		case "value":
			if d.r.null() {
				return nil
			}
			if d.r.dec.PeekKind() != '"' {
				return d.r.typeError("a string")
			}
			v, err := d.r.raw()
			value = v
			return err
		case "valueFrom":
			e.ValueFrom = !d.r.null()
			if !e.ValueFrom {
				return nil
			}
			return d.r.object(func([]byte) error { return d.r.skip() })
		}
		return d.r.skip()
	})
	if err != nil {
		return err
	}
	if relevant && value != nil {
		v, err := d.r.unquote(value)
		if err != nil {
			return err
		}
		e.Value = string(v)
	}
	d.envs = append(d.envs, e)
	return nil
}

// readsEnv reports whether policy reads the env var named name: the env it manages
// and the env it forbids.
func (d *podDecoder) readsEnv(name []byte) bool {
	c := d.cfg
	switch string(name) {
	case c.Token.PathEnv, c.Gateway.EndpointEnv, c.Inference.Env:
		return true
	}
	for _, f := range c.Gateway.ForbiddenEnv {
		if string(name) == f {
			return true
		}
	}
	return false
}

func (d *podDecoder) mountList(dst *[]corev1.VolumeMount, cfg *policy.Config) error {
	if d.r.null() {
		*dst = nil
		return nil
	}
	start := len(d.mounts)
	err := d.r.array(func() error {
		var m corev1.VolumeMount
		raw, err := d.element(func() error {
			return d.r.object(func(name []byte) error {
				switch string(name) {
				case "name":
					return d.r.stringInto(&m.Name)
				case "mountPath":
					return d.r.stringInto(&m.MountPath)
				}
				return d.r.skip()
			})
		})
		if err != nil {
			return err
		}
		if m.Name == cfg.Token.VolumeName || m.MountPath == cfg.Token.MountPath {
			var whole corev1.VolumeMount
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &whole); err != nil {
				return fmt.Errorf("volume mount of %q: %w", cfg.Token.VolumeName, err)
			}
			m = whole
		}
		if len(d.mounts) == maxPodMounts {
			return tooMany("volume mounts in all containers", maxPodMounts)
		}
		d.mounts = append(d.mounts, m)
		return nil
	})
	*dst = part(d.mounts, start, *dst)
	return err
}

func tooMany(what string, limit int) error {
	return fmt.Errorf("the pod has more than %d %s; sandbox-webhook decides only on pods it can read in bounded memory", limit, what)
}
