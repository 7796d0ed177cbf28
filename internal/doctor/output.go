package doctor

import (
	"encoding/json"
	"fmt"
	"io"
)

// TextPrinter writes checks as a checklist, a heading per section, as they complete.
type TextPrinter struct {
	W       io.Writer
	section string
	started bool
}

var statusWord = map[Status]string{Passed: "PASS", Warned: "WARN", Failed: "FAIL", Skipped: "SKIP"}

// Print writes one check: its status, name and message, and the fix under it.
func (p *TextPrinter) Print(ch Check) {
	if !p.started || ch.Section != p.section {
		p.started, p.section = true, ch.Section
		fmt.Fprintln(p.W, ch.Section)
	}
	fmt.Fprintf(p.W, "  %s  %s: %s\n", statusWord[ch.Status], ch.Name, ch.Message)
	if ch.Fix != "" {
		fmt.Fprintf(p.W, "        fix: %s\n", ch.Fix)
	}
}

// Summary writes the closing line.
func (p *TextPrinter) Summary(r *Report) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	s := r.Summary
	fmt.Fprintf(p.W, "%s: %d passed, %d warned, %d failed, %d skipped\n", verdict, s.Passed, s.Warned, s.Failed, s.Skipped)
}

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
