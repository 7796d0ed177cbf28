package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// KeyFinding is one private key embedded in an object. It names where the key is and
// what it is, and never holds any part of the key.
type KeyFinding struct {
	// Field is the path of the value that holds the key, such as
	// spec.containers[1].env[3].value.
	Field string `json:"field"`
	// Container and Env name the container and env var the field belongs to, if any.
	Container string `json:"container,omitempty"`
	Env       string `json:"env,omitempty"`
	// Kind says what the key is, such as "RSA private key (PKCS#1)".
	Kind string `json:"kind"`
	// Fingerprint is "SHA256:" and the first 16 hex digits of the SHA-256 of the decoded
	// key (DER, OpenSSH blob, ...): the same key gives the same fingerprint in any encoding.
	Fingerprint string `json:"fingerprint"`
	// Malformed marks a block labelled as a private key that holds public material. It is
	// reported but not rejected.
	Malformed bool `json:"malformed,omitempty"`
	// Allowed marks a key whose fingerprint is in privateKeys.allowedFingerprints.
	Allowed bool `json:"allowed,omitempty"`

	digest [sha256.Size]byte
}

// Rejects reports whether the finding makes its object rejected.
func (f KeyFinding) Rejects() bool { return !f.Malformed && !f.Allowed }

// String is the finding in one line, as denials and `check` print it.
func (f KeyFinding) String() string {
	var b strings.Builder
	b.WriteString(f.Field)
	switch {
	case f.Container != "" && f.Env != "":
		fmt.Fprintf(&b, " (container %q, env %s)", f.Container, f.Env)
	case f.Container != "":
		fmt.Fprintf(&b, " (container %q)", f.Container)
	case f.Env != "":
		fmt.Fprintf(&b, " (env %s)", f.Env)
	}
	fmt.Fprintf(&b, ": %s, %s", f.Kind, f.Fingerprint)
	return b.String()
}

// KeyLimitError reports an object that could not be inspected within the configured
// bounds. Such an object is denied, never allowed uninspected.
type KeyLimitError struct {
	Reason string
}

func (e *KeyLimitError) Error() string {
	return "object not inspected for private keys: " + e.Reason
}

// Kinds of key, as findings name them.
const (
	KindRSAPKCS1          = "RSA private key (PKCS#1)"
	KindRSAPKCS8          = "RSA private key (PKCS#8)"
	KindRSAPSSPKCS8       = "RSA-PSS private key (PKCS#8)"
	KindECPKCS8           = "EC private key (PKCS#8)"
	KindECSEC1            = "EC private key (SEC1)"
	KindEd25519PKCS8      = "Ed25519 private key (PKCS#8)"
	KindX25519PKCS8       = "X25519 private key (PKCS#8)"
	KindEd448PKCS8        = "Ed448 private key (PKCS#8)"
	KindX448PKCS8         = "X448 private key (PKCS#8)"
	KindDSAPKCS8          = "DSA private key (PKCS#8)"
	KindDHPKCS8           = "DH private key (PKCS#8)"
	KindMLDSAPKCS8        = "ML-DSA private key (PKCS#8)"
	KindMLKEMPKCS8        = "ML-KEM private key (PKCS#8)"
	KindSLHDSAPKCS8       = "SLH-DSA private key (PKCS#8)"
	KindPKCS8             = "private key (PKCS#8)"
	KindEncryptedPKCS8    = "encrypted PKCS#8 private key"
	KindDSA               = "DSA private key"
	KindLegacyEncrypted   = "encrypted private key (legacy PEM, Proc-Type 4,ENCRYPTED)"
	KindOpenSSH           = "OpenSSH private key"
	KindOpenSSHEncrypted  = "encrypted OpenSSH private key"
	KindSSH2              = "SSH2 private key (SSH.com format)"
	KindPuTTY             = "PuTTY private key"
	KindPuTTYEncrypted    = "encrypted PuTTY private key"
	KindPGP               = "PGP private key"
	KindOpenVPNStatic     = "OpenVPN static key"
	KindAge               = "age secret key"
	KindJWKPrivate        = "private JWK"
	KindJWKSymmetric      = "symmetric JWK (kty oct)"
	KindGoogleSA          = "Google service-account key"
	KindMalformedPublic   = "malformed private key block (holds public key material)"
	kindPrefixKubeconfig  = "kubeconfig client-key-data: "
	maxJSONNesting        = 512
	minKeyValueLen        = 24
	minBase64Run          = 64
	maxNameInFindingBytes = 63
)

// DetectPrivateKeys scans the JSON of one Kubernetes object (as an admission request
// carries it) for embedded private keys and returns what it found, in document order.
// kind is the object's kind: a Secret is where a key belongs, so it is never scanned.
// An object over the bounds of cfg.PrivateKeys gives a *KeyLimitError; raw that is not
// JSON gives another error. Neither the findings nor the errors hold key material.
// Findings on cfg.PrivateKeys.AllowedFingerprints are returned with Allowed set.
func DetectPrivateKeys(raw []byte, kind string, cfg *Config) ([]KeyFinding, error) {
	return DetectPrivateKeysUntil(nil, raw, kind, cfg)
}

// DetectPrivateKeysUntil is DetectPrivateKeys that gives up once done is closed: it
// then returns a *KeyLimitError whose Reason is ReasonDeadline, and the object counts
// as not inspected. A nil done never closes.
func DetectPrivateKeysUntil(done <-chan struct{}, raw []byte, kind string, cfg *Config) ([]KeyFinding, error) {
	findings, _, err := detectPrivateKeys(done, raw, kind, cfg)
	return findings, err
}

// detectPrivateKeys is DetectPrivateKeysUntil that also returns the work the scan cost.
func detectPrivateKeys(done <-chan struct{}, raw []byte, kind string, cfg *Config) ([]KeyFinding, int, error) {
	if kind == "Secret" {
		return nil, 0, nil
	}
	limits := cfg.PrivateKeys
	if limits.MaxObjectBytes > 0 && len(raw) > limits.MaxObjectBytes {
		return nil, 0, &KeyLimitError{Reason: fmt.Sprintf("the object is %d bytes, over the limit of %d (privateKeys.maxObjectBytes)", len(raw), limits.MaxObjectBytes)}
	}
	// Where a key could start; a clean object ends here without allocating. \uXXXX
	// escapes can hide a trigger from the raw bytes: the walk looks behind them.
	if !mayHoldKey(raw) && !hasUnicodeEscape(raw) {
		return nil, len(raw), nil
	}
	s := scannerPool.Get().(*keyScanner)
	defer s.release()
	s.maxDepth = limits.MaxDecodeDepth
	if s.maxDepth <= 0 {
		s.maxDepth = 4
	}
	s.perByte = limits.WorkPerByte
	if s.perByte <= 0 {
		s.perByte = defaultWorkPerByte
	}
	s.budget = workBudget(len(raw), s.perByte)
	s.done = done
	// The filter above read the object once.
	s.work, s.nextCheck = 0, 0
	if !s.spend(len(raw)) {
		return nil, s.work, s.err
	}
	err := s.scanObject(raw)
	if s.err != nil {
		// Over the budget somewhere, even where the error was not passed up.
		err = s.err
	}
	if err != nil {
		return nil, s.work, err
	}
	findings := s.findings
	for i := range findings {
		f := &findings[i]
		for _, allowed := range limits.AllowedFingerprints {
			if fingerprintMatches(allowed, f.digest) {
				f.Allowed = true
			}
		}
	}
	return findings, s.work, nil
}

// scannerPool keeps scanners, and the path buffers inside them, from one object to the
// next: a scanner's path points into the scanner, which puts it on the heap.
var scannerPool = sync.Pool{New: func() any {
	s := new(keyScanner)
	s.path = s.pathBuf[:0]
	return s
}}

// release resets s, dropping every reference into the object and the findings that
// were handed out, and returns it to the pool.
func (s *keyScanner) release() {
	clear(s.pathBuf[:])
	s.path = s.pathBuf[:0]
	s.findings, s.seen, s.done, s.err = nil, nil, nil, nil
	s.nested, s.field = 0, ""
	s.work, s.budget, s.nextCheck = 0, 0, 0
	s.openPrivate = false
	scannerPool.Put(s)
}

// RejectingKeys returns the findings that make an object rejected.
func RejectingKeys(findings []KeyFinding) []KeyFinding {
	var out []KeyFinding
	for _, f := range findings {
		if f.Rejects() {
			out = append(out, f)
		}
	}
	return out
}

// KeyDenialMessage is the message of a denial for the rejecting findings: each one's
// field, kind and fingerprint, and what to do instead.
func KeyDenialMessage(findings []KeyFinding) string {
	var b strings.Builder
	if len(findings) == 1 {
		b.WriteString("a private key is embedded in the object: ")
	} else {
		fmt.Fprintf(&b, "%d private keys are embedded in the object: ", len(findings))
	}
	for i, f := range findings {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.String())
	}
	b.WriteString(". Keys in a spec end up in etcd, in `kubectl get -o yaml` and in logs: " +
		"put the key in a Secret and reference it (env valueFrom.secretKeyRef, or a Secret volume), " +
		"or use a projected ServiceAccount token instead of a key. " +
		"A known test key can be allowed by its fingerprint in privateKeys.allowedFingerprints.")
	return b.String()
}

// KeyFingerprint formats a key digest as findings print it.
func keyFingerprint(d [sha256.Size]byte) string {
	return "SHA256:" + hex.EncodeToString(d[:8])
}

func fingerprintMatches(allowed string, d [sha256.Size]byte) bool {
	h, ok := strings.CutPrefix(allowed, "SHA256:")
	if !ok || len(h) < 16 {
		return false
	}
	return strings.HasPrefix(hex.EncodeToString(d[:]), strings.ToLower(h))
}
