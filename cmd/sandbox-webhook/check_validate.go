package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// keyReportFinding is one line of `check -o json`.
type keyReportFinding struct {
	Source string `json:"source"`
	Object string `json:"object"`
	policy.KeyFinding
	Rejected bool `json:"rejected"`
}

// keyReport is the output of `check -o json`.
type keyReport struct {
	Rejected bool               `json:"rejected"`
	Findings []keyReportFinding `json:"findings"`
	// Uninspected lists objects over the detection bounds; they count as rejected.
	Uninspected []keyReportUninspected `json:"uninspected,omitempty"`
}

type keyReportUninspected struct {
	Source string `json:"source"`
	Object string `json:"object"`
	Reason string `json:"reason"`
}

// validateDocuments runs private-key validation over docs and prints one line per
// finding (format "text" or "") or a JSON report ("json"). It reports whether anything
// was rejected.
func validateDocuments(stdout io.Writer, docs []checkDocument, cfg *policy.Config, format string) (bool, error) {
	report := keyReport{Findings: []keyReportFinding{}}
	for _, d := range docs {
		// Only the core Secret is where a key belongs: a CR named Secret in another
		// group is inspected like any other object.
		kind := d.Obj.GetKind()
		if g := d.Obj.GroupVersionKind().Group; kind == "Secret" && g != "" {
			kind += "." + g
		}
		findings, err := policy.DetectPrivateKeys(d.Raw, kind, cfg)
		if err != nil {
			var limit *policy.KeyLimitError
			if !errors.As(err, &limit) {
				return false, fmt.Errorf("%s: %w", d.Source, err)
			}
			report.Rejected = true
			report.Uninspected = append(report.Uninspected, keyReportUninspected{Source: d.Source, Object: d.Label(), Reason: limit.Reason})
			if format != "json" {
				fmt.Fprintf(stdout, "%s: %s: %s\n", d.Source, d.KindName(), limit.Error())
			}
			continue
		}
		for _, f := range findings {
			rejects := f.Rejects()
			report.Rejected = report.Rejected || rejects
			report.Findings = append(report.Findings, keyReportFinding{Source: d.Source, Object: d.Label(), KeyFinding: f, Rejected: rejects})
			if format != "json" && rejects {
				fmt.Fprintf(stdout, "%s: %s: %s: %s, %s\n", d.Source, d.KindName(), f.Field, f.Kind, f.Fingerprint)
			}
		}
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return false, fmt.Errorf("writing the report: %w", err)
		}
	}
	return report.Rejected, nil
}
