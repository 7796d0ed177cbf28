package webhook

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// maxReviewBytes bounds a request body, as the API server bounds objects.
const maxReviewBytes = 7 << 20

// podAdmissionRequest is the part of an AdmissionReview v1 request the handler reads.
type podAdmissionRequest struct {
	UID         types.UID
	Kind        string
	SubResource string
	Namespace   string
	Operation   admissionv1.Operation
	// Object is the object's JSON. Pod is what policy reads of it, read in the same
	// pass unless the request had already shown that it is no CREATE of a pod; PodErr
	// says why it could not be read.
	Object string
	Pod    *policy.InjectionPod
	PodErr error
}

// reviewMemory is what one request of ServeHTTP allocates, kept for the next request
// once the response is written. Every string decoded from the request is a substring
// of body, so nothing of the request may outlive its response: policy copies what it
// keeps into new strings, the lookups are synchronous, and the metrics' labels are
// constants.
type reviewMemory struct {
	body   []byte
	review []byte
	patch  []byte
	decoderMemory
}

// decoderMemory is what a jsonDecoder may reuse instead of allocating.
type decoderMemory struct {
	req                 podAdmissionRequest
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

// put keeps m for another request. The caller must hold nothing decoded from m.body.
func (p *reviewMemoryPool) put(m *reviewMemory) {
	if cap(m.body) > maxPooledBytes || cap(m.review) > maxPooledBytes || cap(m.patch) > maxPooledBytes ||
		cap(m.envs) > maxPooledItems || cap(m.containers) > maxPooledItems ||
		cap(m.volumes) > maxPooledItems || cap(m.mounts) > maxPooledItems {
		return
	}
	// Not the cache's labels: they may change.
	m.namespace = corev1.Namespace{}
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
	req, err := readPodReview(r, h.cfg, mem)
	if err != nil {
		h.metrics.requests.WithLabelValues("error").Inc()
		writeReviewWith(w, "", admission.Errored(http.StatusBadRequest, err), mem)
		return
	}
	var resp admission.Response
	switch {
	case req.Operation != admissionv1.Create || req.Kind != "Pod" || req.SubResource != "" || req.Object == "":
		resp = h.done("ignored", admission.Allowed(""))
	default:
		pod, err := req.Pod, req.PodErr
		if pod == nil && err == nil {
			pod, err = decodeInjectionPod(req.Object, h.cfg)
		}
		if err != nil {
			resp = h.done("error", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err)))
			break
		}
		resp = h.handlePod(r.Context(), req.Namespace, pod, &mem.namespace)
	}
	writeReviewWith(w, req.UID, resp, mem)
}

// readPodReview reads and decodes the request into mem, whose body the strings of the
// result share.
func readPodReview(r *http.Request, cfg *policy.Config, mem *reviewMemory) (*podAdmissionRequest, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s: admission reviews are POSTed", r.Method)
	}
	// The media type without its parameters, as mime.ParseMediaType reads it, but
	// without building a map of the parameters on every request.
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		return nil, fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type"))
	}
	// Read straight into the bytes that every string of the review and the pod will
	// be a substring of.
	body := mem.body[:0]
	if r.ContentLength > 0 && r.ContentLength <= maxReviewBytes {
		body = slices.Grow(body, int(r.ContentLength)+1)
	}
	body, err := readBody(body, r.Body)
	mem.body = body[:0]
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	if len(body) > maxReviewBytes {
		return nil, fmt.Errorf("request larger than %d bytes", maxReviewBytes)
	}
	d := jsonDecoder{s: unsafe.String(unsafe.SliceData(body), len(body))}
	d.reuse(&mem.decoderMemory)
	req, err := d.podReview(cfg)
	d.done()
	return req, err
}

// readBody appends up to maxReviewBytes+1 bytes of r to b.
func readBody(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(len(b), 512), maxReviewBytes+1-len(b)))
		}
		n, err := r.Read(b[len(b):min(cap(b), maxReviewBytes+1)])
		b = b[:len(b)+n]
		if err == io.EOF || len(b) > maxReviewBytes {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// decodePodReview reads an AdmissionReview v1, and the pod of a pod CREATE.
func decodePodReview(body string, cfg *policy.Config) (*podAdmissionRequest, error) {
	d := jsonDecoder{s: body}
	return d.podReview(cfg)
}

func (d *jsonDecoder) podReview(cfg *policy.Config) (*podAdmissionRequest, error) {
	var apiVersion, kind string
	var req *podAdmissionRequest
	err := d.document(func() error {
		return d.object(func(key string) error {
			switch key {
			case "apiVersion":
				return d.stringInto(&apiVersion)
			case "kind":
				return d.stringInto(&kind)
			case "request":
				if d.null() {
					req = nil
					return nil
				}
				if req == nil {
					req = d.newRequest()
				}
				return d.admissionRequest(req, cfg)
			}
			return d.skip()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("decoding the admission review: %w", err)
	}
	if apiVersion != admissionv1.SchemeGroupVersion.String() || kind != "AdmissionReview" {
		return nil, fmt.Errorf("%s %s: want an AdmissionReview of %s", apiVersion, kind, admissionv1.SchemeGroupVersion)
	}
	if req == nil {
		return nil, errors.New("admission review without a request")
	}
	return req, nil
}

func (d *jsonDecoder) admissionRequest(req *podAdmissionRequest, cfg *policy.Config) error {
	return d.object(func(key string) error {
		switch key {
		case "uid":
			return d.stringInto((*string)(&req.UID))
		case "kind":
			return d.object(func(key string) error {
				if key == "kind" {
					return d.stringInto(&req.Kind)
				}
				return d.skip()
			})
		case "subResource":
			return d.stringInto(&req.SubResource)
		case "namespace":
			return d.stringInto(&req.Namespace)
		case "operation":
			return d.stringInto((*string)(&req.Operation))
		case "object":
			start := d.skipSpace()
			req.Object, req.Pod, req.PodErr = "", nil, nil
			if d.null() {
				return nil
			}
			if (req.Operation == "" || req.Operation == admissionv1.Create) && (req.Kind == "" || req.Kind == "Pod") {
				pod := d.newPod()
				req.PodErr = d.pod(pod, cfg)
				if req.PodErr == nil {
					req.Object, req.Pod = d.s[start:d.i], pod
					return nil
				}
				// Not a pod after all; skip it, and fail on its syntax only.
				d.i = start
			}
			if err := d.skip(); err != nil {
				return err
			}
			req.Object = d.s[start:d.i]
			return nil
		}
		return d.skip()
	})
}

// decodeInjectionPod reads what policy.Inject needs from a pod's JSON, and skips the
// rest. Field names match exactly, as the API server matches them: a field the API
// server ignores ("Env", "ENV") is ignored here too. Volumes and mounts that could be
// the token's are decoded whole, so that policy compares all of their content.
func decodeInjectionPod(raw string, cfg *policy.Config) (*policy.InjectionPod, error) {
	pod := &policy.InjectionPod{}
	d := jsonDecoder{s: raw}
	if err := d.document(func() error { return d.pod(pod, cfg) }); err != nil {
		return nil, err
	}
	return pod, nil
}

func (d *jsonDecoder) pod(pod *policy.InjectionPod, cfg *policy.Config) error {
	var spareLabels, spareAnnotations *map[string]string
	if d.mem != nil {
		spareLabels, spareAnnotations = &d.mem.labels, &d.mem.annotations
	}
	return d.object(func(key string) error {
		switch key {
		case "metadata":
			return d.object(func(key string) error {
				switch key {
				case "namespace":
					return d.stringInto(&pod.Namespace)
				case "labels":
					return d.stringMap(&pod.Labels, spareLabels)
				case "annotations":
					return d.stringMap(&pod.Annotations, spareAnnotations)
				}
				return d.skip()
			})
		case "spec":
			return d.object(func(key string) error {
				switch key {
				case "serviceAccountName":
					return d.stringInto(&pod.ServiceAccountName)
				case "serviceAccount":
					return d.stringInto(&pod.DeprecatedServiceAccount)
				case "volumes":
					return d.volumes(&pod.Volumes, cfg)
				case "initContainers":
					return d.containers(&pod.InitContainers, cfg)
				case "containers":
					return d.containers(&pod.Containers, cfg)
				}
				return d.skip()
			})
		}
		return d.skip()
	})
}

func (d *jsonDecoder) volumes(dst *[]corev1.Volume, cfg *policy.Config) error {
	if d.null() {
		*dst = nil
		return nil
	}
	start := len(d.sharedVolumes)
	err := d.array(func() error {
		var v corev1.Volume
		start := d.skipSpace()
		if err := d.object(func(key string) error {
			if key == "name" {
				return d.stringInto(&v.Name)
			}
			return d.skip()
		}); err != nil {
			return err
		}
		if v.Name == cfg.Token.VolumeName {
			// Only this volume goes to the heap, to be decoded.
			var whole corev1.Volume
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts([]byte(d.s[start:d.i]), &whole); err != nil {
				return fmt.Errorf("volume %q: %w", cfg.Token.VolumeName, err)
			}
			v = whole
		}
		d.sharedVolumes = append(d.sharedVolumes, v)
		return nil
	})
	if n := len(d.sharedVolumes); n > start {
		*dst = d.sharedVolumes[start:n:n]
	} else {
		*dst = (*dst)[:0]
	}
	return err
}

func (d *jsonDecoder) containers(dst *[]policy.InjectionContainer, cfg *policy.Config) error {
	if d.null() {
		*dst = nil
		return nil
	}
	// The containers of both lists share one array, as env vars do.
	start := len(d.sharedContainers)
	err := d.array(func() error {
		var c policy.InjectionContainer
		err := d.object(func(key string) error {
			switch key {
			case "name":
				return d.stringInto(&c.Name)
			case "imagePullPolicy":
				return d.stringInto((*string)(&c.ImagePullPolicy))
			case "env":
				return d.env(&c.Env)
			case "volumeMounts":
				return d.volumeMounts(&c.VolumeMounts, cfg)
			case "envFrom":
				return d.envFrom(&c.EnvFrom)
			}
			return d.skip()
		})
		d.sharedContainers = append(d.sharedContainers, c)
		return err
	})
	if n := len(d.sharedContainers); n > start {
		*dst = d.sharedContainers[start:n:n]
	} else {
		*dst = (*dst)[:0]
	}
	return err
}

func (d *jsonDecoder) env(dst *[]policy.InjectionEnvVar) error {
	if d.null() {
		*dst = nil
		return nil
	}
	if !d.envsSized {
		// One array for the env of all containers, sized once: every env var is an
		// object, so there are no more of them than braces left in the document.
		d.envsSized = true
		if n := strings.Count(d.s[d.i:], "{"); cap(d.envs)-len(d.envs) < n {
			d.envs = make([]policy.InjectionEnvVar, 0, n)
		}
	}
	start := len(d.envs)
	err := d.array(func() error {
		if e, ok := d.plainEnvVar(); ok {
			d.envs = append(d.envs, e)
			return nil
		}
		var e policy.InjectionEnvVar
		err := d.object(func(key string) error {
			switch key {
			case "name":
				return d.stringInto(&e.Name)
			case "value":
				return d.stringInto(&e.Value)
			case "valueFrom":
				e.ValueFrom = !d.null()
				if !e.ValueFrom {
					return nil
				}
				return d.object(func(string) error { return d.skip() })
			}
			return d.skip()
		})
		d.envs = append(d.envs, e)
		return err
	})
	*dst = d.envs[start:len(d.envs):len(d.envs)]
	return err
}

// envFrom reads a container's envFrom sources: prefix and the ConfigMap or Secret name.
func (d *jsonDecoder) envFrom(dst *[]policy.InjectionEnvFromSource) error {
	if d.null() {
		*dst = nil
		return nil
	}
	var out []policy.InjectionEnvFromSource
	err := d.array(func() error {
		var src policy.InjectionEnvFromSource
		refName := func(name *string) error {
			if d.null() {
				return nil
			}
			return d.object(func(key string) error {
				if key == "name" {
					return d.stringInto(name)
				}
				return d.skip()
			})
		}
		err := d.object(func(key string) error {
			switch key {
			case "prefix":
				return d.stringInto(&src.Prefix)
			case "configMapRef":
				return refName(&src.ConfigMapName)
			case "secretRef":
				return refName(&src.SecretName)
			}
			return d.skip()
		})
		out = append(out, src)
		return err
	})
	*dst = out
	return err
}

// plainEnvVar reads an env var written as the API server writes most of them,
// {"name":"...","value":"..."} or {"name":"..."} with strings that need no unescaping.
// Otherwise it reads nothing and returns false.
func (d *jsonDecoder) plainEnvVar() (policy.InjectionEnvVar, bool) {
	const head, value = `{"name":"`, `,"value":"`
	var e policy.InjectionEnvVar
	s, i := d.s, d.skipSpace()
	if !strings.HasPrefix(s[i:], head) {
		return e, false
	}
	i += len(head)
	end, ok := plainStringEnd(s, i)
	if !ok {
		return e, false
	}
	e.Name, i = s[i:end], end+1
	if strings.HasPrefix(s[i:], value) {
		i += len(value)
		if end, ok = plainStringEnd(s, i); !ok {
			return e, false
		}
		e.Value, i = s[i:end], end+1
	}
	if i >= len(s) || s[i] != '}' {
		return policy.InjectionEnvVar{}, false
	}
	d.i = i + 1
	return e, true
}

// plainStringEnd returns the offset of the quote that ends the string content starting
// at i, if the content needs no unescaping.
func plainStringEnd(s string, i int) (int, bool) {
	start := i
	i, high := plainRun(s, i)
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, !high || utf8.ValidString(s[start:i])
		case c == '\\' || c < 0x20:
			return 0, false
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return 0, false
}

func (d *jsonDecoder) volumeMounts(dst *[]corev1.VolumeMount, cfg *policy.Config) error {
	if d.null() {
		*dst = nil
		return nil
	}
	start := len(d.sharedMounts)
	err := d.array(func() error {
		var m corev1.VolumeMount
		start := d.skipSpace()
		if err := d.object(func(key string) error {
			switch key {
			case "name":
				return d.stringInto(&m.Name)
			case "mountPath":
				return d.stringInto(&m.MountPath)
			}
			return d.skip()
		}); err != nil {
			return err
		}
		if m.Name == cfg.Token.VolumeName || m.MountPath == cfg.Token.MountPath {
			var whole corev1.VolumeMount
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts([]byte(d.s[start:d.i]), &whole); err != nil {
				return fmt.Errorf("volume mount of %q: %w", cfg.Token.VolumeName, err)
			}
			m = whole
		}
		d.sharedMounts = append(d.sharedMounts, m)
		return nil
	})
	if n := len(d.sharedMounts); n > start {
		*dst = d.sharedMounts[start:n:n]
	} else {
		*dst = (*dst)[:0]
	}
	return err
}

// jsonDecoder walks a JSON document in place. It checks the syntax of everything,
// including what it skips, and the types of what it reads; it reads strings as
// encoding/json does (invalid UTF-8 and lone surrogates become U+FFFD), and returns
// substrings of the document where no unescaping is needed.
type jsonDecoder struct {
	s string
	i int
	// envs backs the env lists of the pod's containers, the others the pod's other
	// lists: each list is a part of one array.
	envs             []policy.InjectionEnvVar
	envsSized        bool
	sharedContainers []policy.InjectionContainer
	sharedVolumes    []corev1.Volume
	sharedMounts     []corev1.VolumeMount
	// mem, when set, holds what the decoder reuses, and takes back what it allocated.
	mem *decoderMemory
}

// reuse lets d decode into m's memory, which must hold nothing still in use. Clearing
// what the last request used keeps the arrays zero beyond their length, so that they
// hold no strings of an earlier body.
func (d *jsonDecoder) reuse(m *decoderMemory) {
	clear(m.envs)
	clear(m.containers)
	clear(m.volumes)
	clear(m.mounts)
	d.envs, d.sharedContainers, d.sharedVolumes, d.sharedMounts = m.envs[:0], m.containers[:0], m.volumes[:0], m.mounts[:0]
	d.mem = m
}

// done hands back to d.mem the arrays that d allocated.
func (d *jsonDecoder) done() {
	if d.mem != nil {
		d.mem.envs, d.mem.containers, d.mem.volumes, d.mem.mounts = d.envs, d.sharedContainers, d.sharedVolumes, d.sharedMounts
	}
}

func (d *jsonDecoder) newRequest() *podAdmissionRequest {
	if d.mem == nil {
		return &podAdmissionRequest{}
	}
	req := &d.mem.req
	*req = podAdmissionRequest{}
	return req
}

func (d *jsonDecoder) newPod() *policy.InjectionPod {
	if d.mem == nil {
		return &policy.InjectionPod{}
	}
	pod := &d.mem.pod
	*pod = policy.InjectionPod{}
	return pod
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

// document reads one value with value, then expects the end of the input.
func (d *jsonDecoder) document(value func() error) error {
	if err := value(); err != nil {
		return err
	}
	if d.skipSpace(); d.i != len(d.s) {
		return d.errorf("data after the top-level value")
	}
	return nil
}

// skipSpace moves past white space and returns the offset of the next value.
func (d *jsonDecoder) skipSpace() int {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return d.i
		}
	}
	return d.i
}

// null consumes a null literal if one comes next.
func (d *jsonDecoder) null() bool {
	d.skipSpace()
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// object calls member for each member of an object (nothing for null); member must
// consume the value.
func (d *jsonDecoder) object(member func(key string) error) error {
	if d.null() {
		return nil
	}
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		return d.errorf("want an object")
	}
	d.i++
	if d.skipSpace(); d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		if d.skipSpace(); d.i >= len(d.s) || d.s[d.i] != '"' {
			return d.errorf("want an object key")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if d.skipSpace(); d.i >= len(d.s) || d.s[d.i] != ':' {
			return d.errorf("want ':' after an object key")
		}
		d.i++
		if err := member(key); err != nil {
			return err
		}
		d.skipSpace()
		if d.i >= len(d.s) {
			return d.errorf("unterminated object")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or '}' in an object")
		}
	}
}

// array calls elem for each element of an array, which must consume it.
func (d *jsonDecoder) array(elem func() error) error {
	if d.skipSpace(); d.i >= len(d.s) || d.s[d.i] != '[' {
		return d.errorf("want an array")
	}
	d.i++
	if d.skipSpace(); d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		d.skipSpace()
		if d.i >= len(d.s) {
			return d.errorf("unterminated array")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or ']' in an array")
		}
	}
}

// stringInto reads a string into dst; null leaves dst as it is, as in encoding/json.
func (d *jsonDecoder) stringInto(dst *string) error {
	if d.null() {
		return nil
	}
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return d.errorf("want a string")
	}
	s, err := d.str()
	*dst = s
	return err
}

// stringMap reads an object of strings into dst, adding to a map already there; null
// sets dst to nil. A new map is *spare, emptied, when there is one; a map made here
// becomes *spare.
func (d *jsonDecoder) stringMap(dst, spare *map[string]string) error {
	if d.null() {
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
	return d.object(func(key string) error {
		var v string
		err := d.stringInto(&v)
		m[key] = v
		return err
	})
}

// skip moves past one value.
func (d *jsonDecoder) skip() error {
	d.skipSpace()
	if d.i >= len(d.s) {
		return d.errorf("unexpected end of input")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, err := d.str()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return d.errorf("unexpected character %q", d.s[d.i])
}

func (d *jsonDecoder) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || d.s[d.i:d.i+len(lit)] != lit {
		return d.errorf("invalid literal")
	}
	d.i += len(lit)
	return nil
}

// number moves past a number of the JSON grammar.
func (d *jsonDecoder) number() error {
	digits := func() int {
		n := 0
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case digits() == 0:
		return d.errorf("invalid number")
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return d.errorf("invalid number")
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return d.errorf("invalid number")
		}
	}
	return nil
}

// str reads the string at d.i (an opening quote).
func (d *jsonDecoder) str() (string, error) {
	start := d.i + 1
	i, high := plainRun(d.s, start)
	for ; i < len(d.s); i++ {
		switch c := d.s[i]; {
		case c == '"':
			d.i = i + 1
			if !high || utf8.ValidString(d.s[start:i]) {
				return d.s[start:i], nil
			}
			return unquote(d.s[start:i]), nil
		case c == '\\':
			end, err := d.escapedStringEnd(i)
			if err != nil {
				return "", err
			}
			d.i = end + 1
			return unquote(d.s[start:end]), nil
		case c < 0x20:
			d.i = i
			return "", d.errorf("control character in a string")
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	d.i = len(d.s)
	return "", d.errorf("unterminated string")
}

// plainRun moves over s from i eight bytes at a time while none is a quote, a
// backslash or a control character; high says whether any was not ASCII.
func plainRun(s string, i int) (int, bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var high uint64
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := w ^ (ones * '"')
		b := w ^ (ones * '\\')
		// A byte below 0x20, or equal to a quote or a backslash, sets its high bit.
		if ((w-ones*0x20)&^w|(q-ones)&^q|(b-ones)&^b)&highs != 0 {
			break
		}
		high |= w
	}
	return i, high&highs != 0
}

// escapedStringEnd returns the offset of the closing quote of a string with escapes,
// from the first backslash at i.
func (d *jsonDecoder) escapedStringEnd(i int) (int, error) {
	for i < len(d.s) {
		switch c := d.s[i]; {
		case c == '"':
			return i, nil
		case c == '\\':
			if i+1 >= len(d.s) {
				break
			}
			switch d.s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			case 'u':
				if i+6 <= len(d.s) && hex4(d.s[i+2:i+6]) >= 0 {
					i += 6
					continue
				}
			}
			d.i = i
			return 0, d.errorf("invalid escape in a string")
		case c < 0x20:
			d.i = i
			return 0, d.errorf("control character in a string")
		default:
			i++
		}
	}
	d.i = len(d.s)
	return 0, d.errorf("unterminated string")
}

func hex4(s string) rune {
	var r rune
	for i := range 4 {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unquote unescapes the validated content of a string as encoding/json does.
func unquote(s string) string {
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(s[i+2:])); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return string(b)
}

// writeReview answers with the AdmissionReview of resp, encoded as encoding/json
// encodes admissionv1.AdmissionReview.
func writeReview(w http.ResponseWriter, uid types.UID, resp admission.Response) {
	writeReviewWith(w, uid, resp, &reviewMemory{})
}

// writeReviewWith is writeReview encoding into mem's buffers.
func writeReviewWith(w http.ResponseWriter, uid types.UID, resp admission.Response, mem *reviewMemory) {
	resp.UID = uid
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	b, patch, err := appendReview(mem.review[:0], mem.patch[:0], &resp)
	if err != nil {
		resp = admission.Errored(http.StatusInternalServerError, err)
		resp.UID = uid
		if b, patch, err = appendReview(b[:0], patch[:0], &resp); err != nil {
			mem.review, mem.patch = b[:0], patch[:0]
			http.Error(w, "encoding the admission response", http.StatusInternalServerError)
			return
		}
	}
	mem.review, mem.patch = b[:0], patch[:0]
	w.Header().Set("Content-Type", "application/json")
	// Write does not keep b (io.Writer), so b may serve the next request.
	_, _ = w.Write(b)
}

// appendReview appends the review of resp to b, and returns the patch's buffer,
// patchBuf grown, for reuse.
func appendReview(b, patchBuf []byte, resp *admission.Response) (review, patch []byte, err error) {
	if len(resp.Patches) > 0 {
		if patch, err = appendPatch(slices.Grow(patchBuf[:0], 4<<10), resp.Patches); err != nil {
			return b, patch, fmt.Errorf("encoding the patch: %w", err)
		}
	} else {
		patch = patchBuf[:0]
	}
	// Room for all of it, so that b grows once. Quoting may need more, rarely.
	size := 512 + base64.StdEncoding.EncodedLen(len(patch))
	if resp.Result != nil {
		size += len(resp.Result.Message)
	}
	for _, w := range resp.Warnings {
		size += len(w) + 8
	}
	for k, v := range resp.AuditAnnotations {
		size += len(k) + len(v) + 8
	}
	b = slices.Grow(b, size)
	b = append(b, `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":`...)
	b = appendJSONString(b, string(resp.UID))
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, resp.Allowed)
	if resp.Result != nil {
		b = append(b, `,"status":`...)
		var err error
		if b, err = appendStatus(b, resp.Result); err != nil {
			return b, patch, err
		}
	}
	if len(patch) > 0 {
		b = append(b, `,"patch":"`...)
		b = base64.StdEncoding.AppendEncode(b, patch)
		b = append(b, `","patchType":"JSONPatch"`...)
	}
	if len(resp.AuditAnnotations) > 0 {
		b = append(b, `,"auditAnnotations":{`...)
		var few [8]string
		keys := few[:0]
		for k := range resp.AuditAnnotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, resp.AuditAnnotations[k])
		}
		b = append(b, '}')
	}
	if len(resp.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range resp.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...), patch, nil
}

// appendStatus encodes the usual Status of a response (a code, a message, a reason) by
// hand, anything more with encoding/json.
func appendStatus(b []byte, s *metav1.Status) ([]byte, error) {
	if s.TypeMeta != (metav1.TypeMeta{}) || s.ListMeta.SelfLink != "" || s.ListMeta.ResourceVersion != "" ||
		s.ListMeta.Continue != "" || s.ListMeta.RemainingItemCount != nil || s.Details != nil {
		// A copy, so that only this path puts the status on the heap.
		cp := *s
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"metadata":{}`...)
	if s.Status != "" {
		b = append(b, `,"status":`...)
		b = appendJSONString(b, s.Status)
	}
	if s.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, s.Message)
	}
	if s.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, string(s.Reason))
	}
	if s.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(s.Code), 10)
	}
	return append(b, '}'), nil
}

// appendPatch encodes ops as json.Marshal does; env vars and strings, the values of
// most operations, by hand.
func appendPatch(b []byte, ops []jsonpatch.Operation) ([]byte, error) {
	b = append(b, '[')
	for i := range ops {
		op := &ops[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		b = appendJSONString(b, op.Operation)
		b = append(b, `,"path":`...)
		b = appendJSONString(b, op.Path)
		switch v := op.Value.(type) {
		case nil:
			if op.Operation == "add" || op.Operation == "replace" {
				b = append(b, `,"value":null`...)
			}
		case string:
			b = append(b, `,"value":`...)
			b = appendJSONString(b, v)
		case corev1.VolumeMount:
			var err error
			if b, err = appendVolumeMount(append(b, `,"value":`...), &v); err != nil {
				return b, err
			}
		case []corev1.VolumeMount:
			b = append(b, `,"value":[`...)
			for k := range v {
				if k > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = appendVolumeMount(b, &v[k]); err != nil {
					return b, err
				}
			}
			b = append(b, ']')
		case corev1.Volume:
			var err error
			if b, err = appendVolume(append(b, `,"value":`...), &v); err != nil {
				return b, err
			}
		case []corev1.Volume:
			b = append(b, `,"value":[`...)
			for k := range v {
				if k > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = appendVolume(b, &v[k]); err != nil {
					return b, err
				}
			}
			b = append(b, ']')
		case corev1.EnvVar:
			if v.ValueFrom != nil {
				raw, err := json.Marshal(v)
				if err != nil {
					return b, err
				}
				b = append(append(b, `,"value":`...), raw...)
				break
			}
			b = append(b, `,"value":{"name":`...)
			b = appendJSONString(b, v.Name)
			if v.Value != "" {
				b = append(b, `,"value":`...)
				b = appendJSONString(b, v.Value)
			}
			b = append(b, '}')
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				return b, err
			}
			b = append(append(b, `,"value":`...), raw...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendVolume encodes the token volume the webhook adds by hand, other volumes with
// encoding/json.
func appendVolume(b []byte, v *corev1.Volume) ([]byte, error) {
	var t *corev1.ServiceAccountTokenProjection
	if p := v.Projected; p != nil && p.DefaultMode == nil && len(p.Sources) == 1 {
		only := p.Sources[0]
		t, only.ServiceAccountToken = only.ServiceAccountToken, nil
		other := v.VolumeSource
		other.Projected = nil
		if only != (corev1.VolumeProjection{}) || other != (corev1.VolumeSource{}) {
			t = nil
		}
	}
	if t == nil {
		cp := *v
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"projected":{"sources":[{"serviceAccountToken":{`...)
	if t.Audience != "" {
		b = append(b, `"audience":`...)
		b = appendJSONString(b, t.Audience)
		b = append(b, ',')
	}
	if t.ExpirationSeconds != nil {
		b = append(b, `"expirationSeconds":`...)
		b = strconv.AppendInt(b, *t.ExpirationSeconds, 10)
		b = append(b, ',')
	}
	b = append(b, `"path":`...)
	b = appendJSONString(b, t.Path)
	return append(b, "}}]}}"...), nil
}

// appendVolumeMount encodes the mounts the webhook adds by hand, others with
// encoding/json.
func appendVolumeMount(b []byte, m *corev1.VolumeMount) ([]byte, error) {
	if m.RecursiveReadOnly != nil || m.SubPath != "" || m.MountPropagation != nil || m.SubPathExpr != "" {
		cp := *m
		raw, err := json.Marshal(&cp)
		return append(b, raw...), err
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, m.Name)
	if m.ReadOnly {
		b = append(b, `,"readOnly":true`...)
	}
	b = append(b, `,"mountPath":`...)
	b = appendJSONString(b, m.MountPath)
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// jsonSafe holds the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := range safe {
		safe[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendJSONString quotes s as encoding/json does, HTML-safe.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
