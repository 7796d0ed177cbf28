package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/inject")

// goldenCase is one folder of testdata/inject: input.yaml holds the pod, the Secrets
// and (optionally) the Namespace; config.yaml (optional) the config; the *.golden files
// what the injector must produce.
type goldenCase struct {
	dir    string
	cfg    *Config
	podRaw []byte
	state  OfflineState
}

// goldenResult is decision.golden.yaml: everything but the patch.
type goldenResult struct {
	Outcome          InjectionOutcome  `json:"outcome"`
	Credential       CredentialState   `json:"credential"`
	Warnings         []string          `json:"warnings,omitempty"`
	Denial           string            `json:"denial,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
}

func loadGoldenCase(t testing.TB, dir string) *goldenCase {
	t.Helper()
	gc := &goldenCase{dir: dir, cfg: DefaultConfig()}
	if b, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil {
		if gc.cfg, err = ParseConfig(b); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
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
		var meta struct{ Kind string }
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Pod":
			gc.podRaw = raw
		case "Secret":
			var s corev1.Secret
			mustUnmarshal(t, raw, &s)
			gc.state.AddSecret(&s)
		case "Namespace":
			var ns corev1.Namespace
			mustUnmarshal(t, raw, &ns)
			gc.state.AddNamespace(&ns)
		case "":
		default:
			t.Fatalf("%s: unexpected kind %q", dir, meta.Kind)
		}
	}
	if gc.podRaw == nil {
		t.Fatalf("%s: no Pod in input.yaml", dir)
	}
	return gc
}

func mustUnmarshal(t testing.TB, raw []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatal(err)
	}
}

// injectRaw runs the injector on a pod's JSON and returns the decision and the patched
// JSON.
func injectRaw(t testing.TB, raw []byte, state *OfflineState, cfg *Config) (InjectionDecision, []byte) {
	t.Helper()
	var pod corev1.Pod
	mustUnmarshal(t, raw, &pod)
	before, _ := json.Marshal(&pod)
	d := Inject(state.Input(&pod, cfg), cfg)
	if after, _ := json.Marshal(&pod); !bytes.Equal(before, after) {
		t.Fatal("Inject changed its input pod")
	}
	if len(d.Patch) == 0 {
		return d, raw
	}
	patchJSON, err := json.Marshal(d.Patch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatchapply.DecodePatch(patchJSON)
	if err != nil {
		t.Fatalf("patch does not decode: %v\n%s", err, patchJSON)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, patchJSON)
	}
	return d, out
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policy/ -run TestInjectGolden -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs:\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func goldenDirs(t testing.TB) []string {
	dirs, err := filepath.Glob(filepath.Join("testdata", "inject", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases under testdata/inject: %v", err)
	}
	return dirs
}

// TestInjectGolden checks every case of testdata/inject: the decision, the patch, the
// patched pod, and that a second pass over the patched pod changes nothing.
func TestInjectGolden(t *testing.T) {
	for _, dir := range goldenDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			gc := loadGoldenCase(t, dir)
			d, out := injectRaw(t, gc.podRaw, &gc.state, gc.cfg)

			var pod corev1.Pod
			mustUnmarshal(t, gc.podRaw, &pod)
			res := goldenResult{
				Outcome:          d.Outcome,
				Credential:       gc.state.Input(&pod, gc.cfg).Credential.State,
				Warnings:         d.Warnings,
				Denial:           d.Denial,
				AuditAnnotations: d.AuditAnnotations,
			}
			resYAML, err := yaml.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(dir, "decision.golden.yaml"), resYAML)

			var patch any = d.Patch
			if d.Patch == nil {
				patch = []struct{}{}
			}
			patchJSON, err := json.MarshalIndent(patch, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(dir, "patch.golden.json"), append(patchJSON, '\n'))

			podYAML, err := yaml.JSONToYAML(out)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(dir, "pod.golden.yaml"), podYAML)

			switch d.Outcome {
			case OutcomeNotSandbox, OutcomeNotTenant, OutcomeUnchanged, OutcomeDenied:
				if len(d.Patch) != 0 {
					t.Fatalf("outcome %s with a patch: %v", d.Outcome, d.Patch)
				}
				if !bytes.Equal(out, gc.podRaw) {
					t.Fatal("pod changed")
				}
			}
			if d.Outcome == OutcomeDenied && d.Denial == "" {
				t.Fatal("denied without a message")
			}

			second, _ := injectRaw(t, out, &gc.state, gc.cfg)
			if len(second.Patch) != 0 {
				t.Fatalf("second pass is not a no-op: %+v", second.Patch)
			}
			if second.Outcome == OutcomeInjected {
				t.Fatalf("second pass outcome %s", second.Outcome)
			}
		})
	}
}

// TestInjectNeverLeaksCredentialValues: no decision text contains any Secret value.
func TestInjectNeverLeaksCredentialValues(t *testing.T) {
	for _, dir := range goldenDirs(t) {
		gc := loadGoldenCase(t, dir)
		d, out := injectRaw(t, gc.podRaw, &gc.state, gc.cfg)
		text := strings.Join(append(d.Warnings, d.Denial), "\n") + string(out)
		for _, v := range d.AuditAnnotations {
			text += v
		}
		for _, secrets := range gc.state.secrets {
			for _, s := range secrets {
				for _, v := range s.Data {
					if len(bytes.TrimSpace(v)) >= 8 && strings.Contains(text, string(v)) {
						t.Errorf("%s: output contains the value of Secret %s", dir, s.Name)
					}
				}
				for _, v := range s.StringData {
					if len(strings.TrimSpace(v)) >= 8 && strings.Contains(text, v) {
						t.Errorf("%s: output contains the value of Secret %s", dir, s.Name)
					}
				}
			}
		}
	}
}
