// Package deploy tests the kustomize manifests under manifests/ as an operator would
// use them: built with kustomize, applied to an API server, with cert-manager injecting
// the serving CA into the webhook configurations.
package deploy
