package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// comparablePod keeps of p what policy.Inject reads, with empty and nil alike.
func comparablePod(p *policy.InjectionPod, cfg *policy.Config) *policy.InjectionPod {
	out := *p
	// Of the labels, policy reads the selecting ones; of the annotations, its own and
	// whether there are others.
	out.Labels = nil
	for _, k := range []string{cfg.Sandboxes.SandboxLabel, cfg.Sandboxes.InjectLabel} {
		if v, ok := p.Labels[k]; ok {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			out.Labels[k] = v
		}
	}
	out.Annotations = nil
	if len(p.Annotations) > 0 {
		out.Annotations = map[string]string{"(others)": ""}
		if v, ok := p.Annotations[policy.AnnotationInjected]; ok {
			out.Annotations[policy.AnnotationInjected] = v
		}
	}
	out.Volumes = nil
	for _, v := range p.Volumes {
		if v.Name != cfg.Token.VolumeName {
			v = corev1.Volume{Name: v.Name}
		}
		out.Volumes = append(out.Volumes, v)
	}
	containers := func(cs []policy.InjectionContainer) []policy.InjectionContainer {
		var out []policy.InjectionContainer
		for _, c := range cs {
			cc := c
			cc.Env = nil
			// Of env vars, policy reads where they are, and the names and values of
			// those it manages or forbids.
			for _, e := range c.Env {
				managed := e.Name == cfg.Token.PathEnv || e.Name == cfg.Gateway.EndpointEnv || e.Name == cfg.Inference.Env || slices.Contains(cfg.Gateway.ForbiddenEnv, e.Name)
				if !managed {
					e = policy.InjectionEnvVar{ValueFrom: e.ValueFrom}
				}
				cc.Env = append(cc.Env, e)
			}
			cc.VolumeMounts = nil
			for _, m := range c.VolumeMounts {
				if m.Name != cfg.Token.VolumeName && m.MountPath != cfg.Token.MountPath {
					m = corev1.VolumeMount{Name: m.Name, MountPath: m.MountPath}
				}
				cc.VolumeMounts = append(cc.VolumeMounts, m)
			}
			out = append(out, cc)
		}
		return out
	}
	out.InitContainers = containers(p.InitContainers)
	out.Containers = containers(p.Containers)
	return &out
}

// checkDecodesAsPod: decodeInjectionPod reads raw as a decoded Pod holds it.
func checkDecodesAsPod(t *testing.T, raw []byte, cfg *policy.Config) {
	t.Helper()
	var pod corev1.Pod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &pod); err != nil {
		t.Fatalf("test pod does not decode: %v", err)
	}
	got, err := decodeInjectionPod(raw, cfg)
	if err != nil {
		t.Fatalf("decodeInjectionPod: %v\n%s", err, raw)
	}
	want := policy.NewInjectionPod(&pod)
	if g, w := comparablePod(got, cfg), comparablePod(want, cfg); !reflect.DeepEqual(g, w) {
		t.Fatalf("decoded\n%+v\nwant\n%+v\nfrom %s", g, w, raw)
	}
}

// goldenInputPods are the pods of the policy's golden cases, as JSON.
func goldenInputPods(t testing.TB) [][]byte {
	dirs, err := filepath.Glob(filepath.Join("..", "policy", "testdata", "inject", "*", "input.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	var pods [][]byte
	for _, path := range dirs {
		f, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(f)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			raw, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(`"kind":"Pod"`)) {
				pods = append(pods, raw)
			}
		}
	}
	return pods
}

func TestDecodeInjectionPodReadsWhatTheDecodedPodHolds(t *testing.T) {
	cfg := policy.DefaultConfig()
	pods := goldenInputPods(t)
	for _, p := range []*corev1.Pod{benchPod(8<<10, 0), benchPod(0, 50)} {
		raw, _ := json.Marshal(p)
		pods = append(pods, raw)
	}
	full := benchPod(0, 3)
	full.Spec.ServiceAccountName = ""
	full.Spec.DeprecatedServiceAccount = "legacy"
	full.Annotations = map[string]string{policy.AnnotationInjected: `{"removedEnv":["X"]}`, "é\u2028": "<&>\x7f"}
	full.Spec.InitContainers = []corev1.Container{{Name: "init", ImagePullPolicy: corev1.PullNever, Env: []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}}
	full.Spec.Volumes = append(full.Spec.Volumes, policy.TokenVolume(cfg), corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}})
	full.Spec.Containers[0].VolumeMounts = append(full.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: cfg.Token.VolumeName, MountPath: "/elsewhere", SubPath: "token"},
		corev1.VolumeMount{Name: "config", MountPath: cfg.Token.MountPath, ReadOnly: true})
	raw, _ := json.Marshal(full)
	pods = append(pods, raw)
	for _, raw := range pods {
		checkDecodesAsPod(t, raw, cfg)
	}
}

// The API server matches field names exactly; so does the decoder, whatever the case
// of a field that differs only in case.
func TestDecodeInjectionPodMatchesFieldNamesExactly(t *testing.T) {
	cfg := policy.DefaultConfig()
	raw := `{"metadata":{"Labels":{"x":"y"},"labels":{"a":"b"},"ANNOTATIONS":{"k":"v"}},
	"spec":{"ServiceAccountName":"other","Containers":[{"name":"hidden"}],"containers":[
	{"name":"agent","Env":[{"name":"HIDDEN"}],"env":[{"Name":"N","name":"E","Value":"v","value":"w","ValueFrom":{}},{"name":"F","valuefrom":{}}],
	"VolumeMounts":[{"name":"x","mountPath":"/x"}],"imagePullpolicy":"Never"}],"Volumes":[{"name":"v"}]}}`
	checkDecodesAsPod(t, []byte(raw), cfg)
	pod, err := decodeInjectionPod([]byte(raw), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Containers) != 1 || len(pod.Containers[0].Env) != 2 || pod.Containers[0].Env[0].ValueFrom || pod.Volumes != nil || pod.Annotations != nil {
		t.Fatalf("fields that differ in case were read: %+v", pod)
	}
}

func TestDecodeInjectionPodReadsStringsAsEncodingJSON(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, s := range []string{
		`plain`, `\u00e9\n\t\"\\\/\b\f\r`, `\ud83d\ude00`, `\u2028`, "é", `\ufffd`,
	} {
		raw := `{"metadata":{"labels":{"` + s + `":"` + s + `"}},"spec":{"containers":[{"name":"` + s + `"}]}}`
		checkDecodesAsPod(t, []byte(raw), cfg)
	}
}

// The API server writes valid UTF-8 (encoding/json replaces what is not), so a string
// that is not is refused rather than guessed at, and the error does not quote it.
func TestDecodeInjectionPodRefusesInvalidUTF8WithoutQuotingIt(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, s := range []string{`\ud83d`, `\ud83dx`, `\udc00\ud83d`, "\xff\xfe bad utf-8 \xc3", "SECRETSECRET\xc3"} {
		raw := `{"metadata":{"labels":{"a":"` + s + `"}},"spec":{"containers":[{"name":"b"}]}}`
		_, err := decodeInjectionPod([]byte(raw), cfg)
		if err == nil {
			t.Fatalf("%q: no error", s)
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "bad utf") || !strings.Contains(err.Error(), "offset") {
			t.Errorf("%q: error %q", s, err)
		}
	}
}

// Env vars as the API server writes them take a shorter path; every other form reads
// the same.
func TestDecodeInjectionPodReadsEveryFormOfEnvVar(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, env := range []string{
		`{"name":"A","value":"1"}`, `{"name":"A"}`, `{"name":""}`, `{"name":"A","value":""}`,
		`{"name":"A","value":"1","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}`,
		`{"name":"A","valueFrom":null}`, `{"value":"1","name":"A"}`, ` { "name" : "A" , "value" : "1" } `,
		`{"name":"\u0041","value":"\n"}`, `{"name":"é","value":"ü"}`,
		`{"name":"A","Value":"1"}`, `{"name":"A","value":"1","other":[1,{"a":null}]}`, `null`, `{}`,
	} {
		raw := `{"spec":{"containers":[{"name":"a","env":[{"name":"B","value":"2"},` + env + `,{"name":"C"}]}]}}`
		checkDecodesAsPod(t, []byte(raw), cfg)
	}
}

func TestDecodeInjectionPodRejectsInvalidJSON(t *testing.T) {
	cfg := policy.DefaultConfig()
	for _, raw := range []string{
		``, `[]`, `{`, `{"spec":}`, `{"spec":{"containers":[{"name":1}]}}`, `{"spec":{"containers":{}}}`,
		`{"metadata":{"labels":{"a":1}}}`, `{"x":01}`, `{"x":-}`, `{"x":1.}`, `{"x":1e}`, `{"x":tru}`,
		`{"x":"a` + "\n" + `"}`, `{"x":"\x"}`, `{"x":"\u12"}`, `{} {}`, `{"a" 1}`, `{"a":1,}`, `{"a":[1,]}`,
		`{"spec":{"containers":[{"env":[{"valueFrom":"x"}]}]}}`,
		`{"spec":{"containers":[{"env":[{"name":"A","value":"1","name":"B"}]}]}}`, `{"spec":{},"spec":{}}`,
		"{\"spec\":{\"containers\":[{\"env\":[{\"name\":\"A\",\"value\":\"\xff\"}]}]}}",
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"x":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10002),
	} {
		if _, err := decodeInjectionPod([]byte(raw), cfg); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
}

// FuzzDecodeInjectionPod: what the decoder reads of any pod the API server could send
// (a decoded pod, serialized) is what policy reads of the decoded pod; and a pod that
// decodes as a Pod decodes here.
func FuzzDecodeInjectionPod(f *testing.F) {
	for _, raw := range goldenInputPods(f) {
		f.Add(raw)
	}
	f.Add([]byte(`{"spec":{"containers":[{"name":"a","env":[{"name":"\u00e9","valueFrom":null}]}]}}`))
	cfg := policy.DefaultConfig()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, err := decodeInjectionPod(raw, cfg)
		var pod corev1.Pod
		if sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &pod) != nil {
			return
		}
		// Duplicate names and invalid UTF-8 are refused; the API server sends neither.
		if err != nil && jsontext.Value(raw).IsValid() {
			t.Fatalf("a pod that decodes as a Pod: %v", err)
		}
		canonical, err := json.Marshal(&pod)
		if err != nil {
			return
		}
		checkDecodesAsPod(t, canonical, cfg)
	})
}

// decodePodReview reads a review and, for a pod CREATE, its pod, as ServeHTTP does.
func decodePodReview(body []byte, cfg *policy.Config) (*reviewRequest, *policy.InjectionPod, error) {
	var r jsonReader
	req := &reviewRequest{}
	if err := r.readAdmissionReview(body, req, nil); err != nil {
		return nil, nil, err
	}
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || len(req.Object) == 0 {
		return req, nil, nil
	}
	pod, err := decodeInjectionPod(req.Object, cfg)
	return req, pod, err
}

func TestReadAdmissionReviewReadsTheRequestAndItsObjects(t *testing.T) {
	cfg := policy.DefaultConfig()
	pod := benchPod(0, 2)
	body := admissionReviewBody(t, pod)
	req, gotPod, err := decodePodReview(body, cfg)
	if err != nil {
		t.Fatal(err)
	}
	podJSON, _ := json.Marshal(pod)
	wantPod, err := decodeInjectionPod(podJSON, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gotPod == nil || !reflect.DeepEqual(*gotPod, *wantPod) {
		t.Fatalf("pod %+v", gotPod)
	}
	if string(req.Object) != string(podJSON) {
		t.Fatalf("object %s\nwant %s", req.Object, podJSON)
	}
	req.Object = nil
	want := reviewRequest{UID: "7c6f1a2e-bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: pod.Namespace, Operation: admissionv1.Create}
	if !reflect.DeepEqual(*req, want) {
		t.Fatalf("got %+v\nwant %+v", *req, want)
	}

	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`
	for _, c := range []struct {
		request       string
		object, old   string
		subresource   string
		kind, operate string
	}{
		{request: `{"object":{"spec":{"containers":[{"name":"a"}]}},"operation":"CREATE"}`, object: `{"spec":{"containers":[{"name":"a"}]}}`, operate: "CREATE"},
		{request: `{"operation":"UPDATE","kind":{"kind":"Pod"},"subResource":"status","object": {"a":[1, 2]} ,"oldObject":{"b":null}}`,
			object: `{"a":[1, 2]}`, old: `{"b":null}`, subresource: "status", kind: "Pod", operate: "UPDATE"},
		{request: `{"kind":{"kind":"Secret"},"object":null,"oldObject":"x"}`, old: `"x"`, kind: "Secret"},
		{request: `{"object":{"spec":{"containers":7}}}`, object: `{"spec":{"containers":7}}`},
	} {
		var r jsonReader
		var req reviewRequest
		if err := r.readAdmissionReview([]byte(head+c.request+"}"), &req, nil); err != nil {
			t.Fatalf("%s: %v", c.request, err)
		}
		if string(req.Object) != c.object || string(req.OldObject) != c.old || req.SubResource != c.subresource ||
			req.Kind.Kind != c.kind || string(req.Operation) != c.operate {
			t.Errorf("%s: read %+v", c.request, req)
		}
	}
	// An object that is not a pod fails only the pod's decoding.
	if _, _, err := decodePodReview([]byte(head+`{"operation":"CREATE","kind":{"kind":"Pod"},"object":{"spec":{"containers":7}}}}`), cfg); err == nil {
		t.Fatal("a pod whose containers are a number decoded")
	}

	for _, bad := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`,
		`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}`,
		`{"apiVersion":"admission.k8s.io/v1","Kind":"AdmissionReview","request":{}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","kind":"AdmissionReview","request":{}}`,
		head + `{"object":{]}}`,
		head + `{"operation":"UPDATE","object":{"a":tru}}}`,
		head + `{"object":{"a":1,"a":2}}}`,
		head + `{"uid":"1","uid":"2"}}`,
		head + `{"object":{"a":"\ud800"}}}`,
		head + "{\"object\":{\"a\":\"\xff\"}}}",
		head + `{"object":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
		head + `{}} {}`,
	} {
		var r jsonReader
		if err := r.readAdmissionReview([]byte(bad), &reviewRequest{}, nil); err == nil {
			t.Errorf("%.200s: no error", bad)
		}
	}
}

// writeReview writes what encoding/json writes for the completed response.
func TestWriteReviewEncodesAsEncodingJSON(t *testing.T) {
	cfg := policy.DefaultConfig()
	patched := admission.Response{
		Patches: []jsonpatch.Operation{
			{Operation: "add", Path: "/spec/volumes/-", Value: policy.TokenVolume(cfg)},
			{Operation: "replace", Path: "/spec/containers/0/env/3", Value: corev1.EnvVar{Name: "A", Value: "<b>&\u2028\x01"}},
			{Operation: "add", Path: "/spec/containers/0/env/-", Value: corev1.EnvVar{Name: "EMPTY"}},
			{Operation: "add", Path: "/spec/containers/0/env/-", Value: corev1.EnvVar{Name: "FROM", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			{Operation: "remove", Path: "/spec/containers/0/env/1"},
			{Operation: "add", Path: "/metadata/annotations/a~1b", Value: `{"x":"y"}`},
			{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{"k": "v"}},
			{Operation: "add", Path: "/x", Value: nil},
			{Operation: "add", Path: "/spec/volumes", Value: []corev1.Volume{policy.TokenVolume(cfg), {Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
			{Operation: "add", Path: "/spec/volumes/-", Value: corev1.Volume{Name: "t", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "p"}}}}}}},
		},
		AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, Warnings: []string{"w \"1\"", "\xffbad"}, AuditAnnotations: map[string]string{"z": "1", "a": "2", "m\t": "3"}},
	}
	withDetails := admission.Denied("no")
	withDetails.Result.Details = &metav1.StatusDetails{Name: "p", Kind: "Pod"}
	for name, resp := range map[string]admission.Response{
		"allowed":      admission.Allowed(""),
		"denied":       admission.Denied("spec.volumes[0] (name \"x\"): rename it <now>"),
		"errored":      admission.Errored(http.StatusBadRequest, errors.New("decoding: offset 3")),
		"no status":    {AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}},
		"patched":      patched,
		"with details": withDetails,
	} {
		want := resp
		want.Result = want.Result.DeepCopy()
		if err := want.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "u<1>"}}); err != nil {
			t.Fatal(err)
		}
		wantJSON, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Response: &want.AdmissionResponse,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeReview(rec, "u<1>", resp)
		if got := rec.Body.String(); got != string(wantJSON) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, wantJSON)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", name, ct)
		}
	}
}

func TestServeHTTPAcceptsJSONWithParametersOnly(t *testing.T) {
	cfg := policy.DefaultConfig()
	h := newTestInjector(t, cfg, &stubReader{namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")}})
	body := admissionReviewBody(t, benchPod(0, 1))
	for ct, ok := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"text/plain": false, "": false, "application/jsonx": false, "application/yaml; x=application/json": false,
	} {
		req := httptest.NewRequest(http.MethodPost, PathMutatePods, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
			t.Fatalf("%q: %v %s", ct, err, rec.Body)
		}
		if review.Response.Allowed != ok {
			t.Errorf("%q: allowed %v, want %v: %+v", ct, review.Response.Allowed, ok, review.Response.Result)
		}
	}
}
