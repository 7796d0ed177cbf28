// Package certs provides the webhook's serving certificates: files that the webhook
// server reloads when cert-manager rotates them, and a self-signed CA with a leaf for the
// dev mode and the test suites. It never logs key material, only fingerprints.
package certs
