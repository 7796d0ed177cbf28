// Package deploy tests the kustomize manifests under manifests/ as an operator would
// use them: every folder built with kustomize and every object it renders accepted by a
// real API server (server-side dry run), the webhook configurations, Deployment, RBAC
// and NetworkPolicy checked against what the code serves and does, the webhook run with
// nothing but its own RBAC, and cert-manager's CA injector filling both webhook
// configurations from the cert-manager overlay's serving certificate.
package deploy
