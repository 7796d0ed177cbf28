// Package examples holds the objects of the walk-through as YAML for kubectl:
// 1-tenants.yaml (two tenant namespaces, one with an inference credential),
// 2-sandbox-pods.yaml (a sandbox pod in each) and refused/pod-with-key.yaml (a pod the
// validating webhook refuses once a throwaway key is pasted in). `sandbox-webhook dev
// --demo` applies these same files, embedded here.
package examples

import "embed"

// Files are the example YAML files, by their paths in this folder.
//
//go:embed *.yaml refused/*.yaml
var Files embed.FS

// The example files, as named in Files.
const (
	Tenants     = "1-tenants.yaml"
	SandboxPods = "2-sandbox-pods.yaml"
	PodWithKey  = "refused/pod-with-key.yaml"
	// KeyPlaceholder stands for a private key in PodWithKey.
	KeyPlaceholder = "PASTE-A-THROWAWAY-KEY-HERE"
)
