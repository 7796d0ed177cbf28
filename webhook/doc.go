// Package webhook is the admission front door: it decodes admission requests, looks up
// what the policy package needs (the namespace's inference credentials), calls policy and
// encodes its decision as an admission response. It makes no decisions of its own.
package webhook
