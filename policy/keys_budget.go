package policy

import "fmt"

// The scanner's work is counted in units of about one byte examined. Every pass over
// text, every candidate and every finding is paid for before it runs, so an object
// stops being inspected as soon as its budget is spent: no input can make the scan
// take more than a fixed multiple of its size.
const (
	// workBase is the budget every object gets whatever its size: small objects
	// holding a few keys in nested encodings must pass.
	workBase = 1 << 20
	// workPerCandidate is what a candidate costs over the bytes it makes the scanner
	// examine: a call, a decode buffer, a classification.
	workPerCandidate = 256
	// workPerFinding is what a finding costs: a digest, a fingerprint, a field path,
	// a set entry and their allocations take about as long as reading 3 KiB.
	workPerFinding = 12288
	// workPerPEMBlock is what a PEM block costs over its candidate: finding its END
	// marker, reading its label and checking its body's structure.
	workPerPEMBlock = 768
	// workPerNestedWalk is what setting up a reader for JSON text inside a string costs.
	workPerNestedWalk = 4096
	// workCheckInterval is how much work passes between two looks at the deadline.
	workCheckInterval = 64 << 10
	// defaultWorkPerByte is privateKeys.workPerByte when the config leaves it unset.
	defaultWorkPerByte = 16
)

// ReasonDeadline is the reason of the *KeyLimitError returned when the done channel of
// DetectPrivateKeysUntil closes before the object was fully inspected.
const ReasonDeadline = "the review's deadline passed before the object was fully inspected"

// workBudget returns the work allowed for an object of n bytes.
func workBudget(n, perByte int) int {
	if perByte <= 0 {
		perByte = defaultWorkPerByte
	}
	return workBase + perByte*n
}

// spend charges n units of work. Past the budget, or once done is closed, it records a
// *KeyLimitError that the scan returns, and reports false; it keeps reporting false.
func (s *keyScanner) spend(n int) bool {
	if s.err != nil {
		return false
	}
	s.work += n
	if s.work < s.nextCheck {
		return true
	}
	return s.checkpoint()
}

// charge is spend for callers that return an error.
func (s *keyScanner) charge(n int) error {
	if !s.spend(n) {
		return s.err
	}
	return nil
}

func (s *keyScanner) checkpoint() bool {
	if s.work > s.budget {
		s.err = &KeyLimitError{Reason: fmt.Sprintf("inspecting the object takes more work than its budget of %d units (%d per byte, privateKeys.workPerByte)", s.budget, s.perByte)}
		return false
	}
	if s.done != nil {
		select {
		case <-s.done:
			s.err = &KeyLimitError{Reason: ReasonDeadline}
			return false
		default:
		}
	}
	s.nextCheck = min(s.work+workCheckInterval, s.budget+1)
	return true
}
