// Package policy holds every decision sandbox-webhook makes, as pure functions: the
// configuration and its validation, private-key detection, sandbox pod injection and
// inference-credential classification. It has no client, does no I/O and never logs
// values, so the admission webhook and the offline check command share one implementation.
package policy
