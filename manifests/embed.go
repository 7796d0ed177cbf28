// Package manifests holds the deployment (a kustomize base and overlays) and the Sandbox
// CRD used by the tests and the dev mode. The dev mode embeds the CRDs, the gateway
// ClusterRole and the webhook configurations from here so the binary needs no checkout.
package manifests

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// crds are the CustomResourceDefinitions the dev mode installs.
//
//go:embed crds/*.yaml
var crds embed.FS

// webhooks is the admission webhook configuration file of the base.
//
//go:embed base/webhooks.yaml
var webhooks []byte

// gatewayClusterRole is the ClusterRole every tenant gateway is bound to.
//
//go:embed base/gateway-clusterrole.yaml
var gatewayClusterRole []byte

// GatewayClusterRole is the base's ClusterRole openshell-gateway-node-reader
// (tokenreviews create, nodes read), which the tenancy reconciler binds every tenant
// gateway ServiceAccount to.
func GatewayClusterRole() (*rbacv1.ClusterRole, error) {
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(gatewayClusterRole, role); err != nil {
		return nil, fmt.Errorf("gateway-clusterrole.yaml: %w", err)
	}
	return role, nil
}

// CRDs are the CustomResourceDefinitions under crds/.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(crds, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := crds.ReadFile(path)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return fmt.Errorf("CRD %s: %w", path, err)
		}
		out = append(out, crd)
		return nil
	})
	return out, err
}

// WebhookConfigurations are the base's mutating and validating webhook configurations,
// as shipped (service references, no caBundle).
func WebhookConfigurations() ([]*admissionv1.MutatingWebhookConfiguration, []*admissionv1.ValidatingWebhookConfiguration, error) {
	var mutating []*admissionv1.MutatingWebhookConfiguration
	var validating []*admissionv1.ValidatingWebhookConfiguration
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(webhooks)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return mutating, validating, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("webhooks.yaml: %w", err)
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("webhooks.yaml: %w", err)
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			m := &admissionv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, m); err != nil {
				return nil, nil, fmt.Errorf("webhooks.yaml: %w", err)
			}
			mutating = append(mutating, m)
		case "ValidatingWebhookConfiguration":
			v := &admissionv1.ValidatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				return nil, nil, fmt.Errorf("webhooks.yaml: %w", err)
			}
			validating = append(validating, v)
		}
	}
}
