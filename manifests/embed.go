// Package manifests holds the deployment (a kustomize base and overlays) and the Sandbox
// CRD used by the tests and the dev mode. The dev mode embeds the CRDs and the webhook
// configurations from here so the binary needs no checkout.
package manifests

import "embed"

// CRDs are the CustomResourceDefinitions the dev mode installs.
//
//go:embed crds/*.yaml
var CRDs embed.FS

// Webhooks is the admission webhook configuration file of the base.
//
//go:embed base/webhooks.yaml
var Webhooks []byte
