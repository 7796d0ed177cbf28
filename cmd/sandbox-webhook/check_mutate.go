package main

import (
	"errors"
	"io"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// mutateDocuments validates docs as validateDocuments does, then runs the sandbox pod
// injection on every Pod with the Secrets and Namespaces among docs as cluster state,
// and prints the mutated objects ("yaml" or "", "json") or the patches ("patch").
func mutateDocuments(stdout, stderr io.Writer, docs []checkDocument, cfg *policy.Config, format string) (bool, error) {
	return false, errors.New("check --mutate: injection is not available yet")
}
