package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// injectedPod is one Pod of the inputs after the sandbox pod injection.
type injectedPod struct {
	doc      checkDocument
	decision policy.InjectionDecision
	// Mutated is the pod's JSON with the patch applied (the input when nothing changed).
	Mutated []byte
}

// mutateDocuments validates docs as validateDocuments does, then runs the sandbox pod
// injection on every Pod with the Secrets and Namespaces among docs as cluster state,
// and prints the mutated objects ("yaml" or "", "json") or the patches ("patch").
// Only Pods are printed: the other inputs (Secrets above all) stand for cluster state.
// Warnings and denials go to stderr.
func mutateDocuments(stdout, stderr io.Writer, docs []checkDocument, cfg *policy.Config, format string) (bool, error) {
	// Validation runs first, exactly as in `check` without --mutate; its report goes
	// to stderr so that stdout stays the mutated objects.
	rejected, err := validateDocuments(stderr, stderr, docs, cfg, "")
	if err != nil {
		return false, err
	}
	if rejected {
		return true, nil
	}
	pods, err := injectDocuments(docs, cfg)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		for _, w := range p.decision.Warnings {
			fmt.Fprintf(stderr, "Warning: %s (%s): %s\n", p.doc.Label(), p.doc.Source, w)
		}
		if p.decision.Outcome == policy.OutcomeDenied {
			fmt.Fprintf(stderr, "%s (%s): denied: %s\n", p.doc.Label(), p.doc.Source, p.decision.Denial)
			rejected = true
		}
	}
	if rejected {
		return true, nil
	}
	return false, printInjected(stdout, pods, format)
}

// injectDocuments runs the injector over every Pod among docs.
func injectDocuments(docs []checkDocument, cfg *policy.Config) ([]injectedPod, error) {
	var state policy.OfflineState
	var pods []injectedPod
	for _, d := range docs {
		if d.Obj.GetAPIVersion() != "v1" {
			continue
		}
		switch d.Obj.GetKind() {
		case "Namespace":
			ns := &corev1.Namespace{}
			if err := json.Unmarshal(d.Raw, ns); err != nil {
				return nil, fmt.Errorf("%s: reading Namespace: %w", d.Source, err)
			}
			state.AddNamespace(ns)
		case "Secret":
			s := &corev1.Secret{}
			if err := json.Unmarshal(d.Raw, s); err != nil {
				// Never quote the decoder's error: it may hold part of a value.
				return nil, fmt.Errorf("%s: %s is not a valid Secret", d.Source, d.Label())
			}
			state.AddSecret(s)
		case "Pod":
			pods = append(pods, injectedPod{doc: d})
		}
	}
	for i := range pods {
		p := &pods[i]
		pod := &corev1.Pod{}
		if err := json.Unmarshal(p.doc.Raw, pod); err != nil {
			return nil, fmt.Errorf("%s: reading Pod: %w", p.doc.Source, err)
		}
		p.decision = policy.Inject(state.Input(pod, cfg), cfg)
		p.Mutated = p.doc.Raw
		if len(p.decision.Patch) == 0 {
			continue
		}
		mutated, err := applyPatch(p.doc.Raw, p.decision.Patch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.doc.Source, err)
		}
		p.Mutated = mutated
	}
	return pods, nil
}

func applyPatch(raw []byte, ops []jsonpatch.Operation) ([]byte, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	patch, err := jsonpatchapply.DecodePatch(b)
	if err != nil {
		return nil, fmt.Errorf("decoding the patch: %w", err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		return nil, fmt.Errorf("applying the patch: %w", err)
	}
	return out, nil
}

// patchReport is one entry of `-o patch`.
type patchReport struct {
	Object string                `json:"object"`
	Source string                `json:"source"`
	Patch  []jsonpatch.Operation `json:"patch"`
}

func printInjected(w io.Writer, pods []injectedPod, format string) error {
	switch format {
	case "patch":
		reports := make([]patchReport, 0, len(pods))
		for _, p := range pods {
			ops := p.decision.Patch
			if ops == nil {
				ops = []jsonpatch.Operation{}
			}
			reports = append(reports, patchReport{Object: p.doc.Label(), Source: p.doc.Source, Patch: ops})
		}
		return writeIndentedJSON(w, reports)
	case "json":
		if len(pods) == 1 {
			return writeIndentedJSON(w, json.RawMessage(pods[0].Mutated))
		}
		items := make([]json.RawMessage, 0, len(pods))
		for _, p := range pods {
			items = append(items, p.Mutated)
		}
		return writeIndentedJSON(w, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	default:
		for i, p := range pods {
			out, err := yaml.JSONToYAML(p.Mutated)
			if err != nil {
				return fmt.Errorf("%s: %w", p.doc.Source, err)
			}
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		return nil
	}
}

func writeIndentedJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}
