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
	// Skipped lists objects of kinds the webhook does not validate (Secrets and
	// Namespaces, which stand for cluster state, are not listed).
	Skipped []keyReportSkipped `json:"skipped,omitempty"`
}

type keyReportSkipped struct {
	Source string `json:"source"`
	Object string `json:"object"`
	Reason string `json:"reason"`
}

type keyReportUninspected struct {
	Source string `json:"source"`
	Object string `json:"object"`
	Reason string `json:"reason"`
}

// validateDocuments runs private-key validation over docs and prints one line per
// finding (format "text" or "") or a JSON report ("json") to stdout, and a note for each
// object of a kind the webhook does not validate to notes (text only). It reports whether
// anything was rejected.
func validateDocuments(stdout, notes io.Writer, docs []checkDocument, cfg *policy.Config, format string) (bool, error) {
	report := keyReport{Findings: []keyReportFinding{}}
	for _, d := range docs {
		// The webhook inspects the kinds of policy.KeyValidatedResources and no others;
		// so does check, so that both give the same answer. A kind Secret of another
		// group is not the core Secret: it is inspected if the list names it.
		gvk := d.Obj.GroupVersionKind()
		if !policy.IsKeyValidatedKind(gvk.Group, gvk.Kind) {
			if gvk.Group == "" && (gvk.Kind == "Secret" || gvk.Kind == "Namespace") {
				continue
			}
			reason := fmt.Sprintf("the webhook does not validate %s objects", gvkLabel(gvk.Group, gvk.Kind))
			report.Skipped = append(report.Skipped, keyReportSkipped{Source: d.Source, Object: d.Label(), Reason: reason})
			if format != "json" {
				fmt.Fprintf(notes, "%s: %s: skipped: %s\n", d.Source, d.KindName(), reason)
			}
			continue
		}
		findings, err := policy.DetectPrivateKeys(d.Raw, gvk.Kind, cfg)
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

// gvkLabel is Kind, or Kind.group outside the core group.
func gvkLabel(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}
