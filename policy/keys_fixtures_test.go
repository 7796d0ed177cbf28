package policy

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// keyFixture is one private key in one text format, generated at test time.
type keyFixture struct {
	name string
	text string // the key as a user would paste it
	kind string // expected finding kind
	// material is what the fingerprint is computed over (DER, blob, ...).
	material []byte
	// body is the key's encoded body; no output may contain any 8 characters of it.
	body string
	// multiline formats survive line-level re-encodings (CRLF, folding, escapes).
	multiline bool
}

func (k keyFixture) fingerprint() string {
	d := sha256.Sum256(k.material)
	return "SHA256:" + hex.EncodeToString(d[:8])
}

var (
	fixturesOnce sync.Once
	fixtures     []keyFixture
	fixtureRSA   *rsa.PrivateKey
	fixtureEC    *ecdsa.PrivateKey
)

// keyFixtures generates one fixture per supported format (once per test binary).
func keyFixtures(t testing.TB) []keyFixture {
	t.Helper()
	fixturesOnce.Do(func() { fixtures = makeKeyFixtures() })
	if fixtures == nil {
		t.Fatal("generating key fixtures failed")
	}
	return fixtures
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func pemFixture(name, label string, der []byte, kind string) keyFixture {
	text := string(pem.EncodeToMemory(&pem.Block{Type: label, Bytes: der}))
	return keyFixture{name: name, text: text, kind: kind, material: der, body: pemBody(text), multiline: true}
}

// pemBody is the base64 between the markers, without line breaks.
func pemBody(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "-----") || strings.Contains(l, ":") {
			continue
		}
		b.WriteString(strings.TrimSpace(l))
	}
	return b.String()
}

// randBytes is n bytes of a fixed-seed stream: random-looking test values (bodies,
// secrets, noise) are the same in every run, so that a value the detector happens to
// misjudge shows up every time rather than once in thousands of runs. Keys are still
// generated fresh with crypto/rand.
func randBytes(n int) []byte {
	b := make([]byte, n)
	testBytesMu.Lock()
	defer testBytesMu.Unlock()
	_, _ = testBytes.Read(b)
	return b
}

var (
	testBytesMu sync.Mutex
	testBytes   = mathrand.NewChaCha8([32]byte{'s', 'a', 'n', 'd', 'b', 'o', 'x', '-', 'w', 'e', 'b', 'h', 'o', 'o', 'k'})
)

func derSeq(parts ...[]byte) []byte { return derTLV(0x30, concat(parts...)) }
func derInt(b []byte) []byte {
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return derTLV(0x02, b)
}
func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
func derTLV(tag byte, content []byte) []byte {
	n := len(content)
	switch {
	case n < 128:
		return append([]byte{tag, byte(n)}, content...)
	case n < 256:
		return append([]byte{tag, 0x81, byte(n)}, content...)
	default:
		return append([]byte{tag, 0x82, byte(n >> 8), byte(n)}, content...)
	}
}

func sshWire(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
		out = append(out, p...)
	}
	return out
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteByte('\n')
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func bech32Encode(hrp string, data []byte) string {
	var vals []byte
	acc, bits := 0, 0
	for _, b := range data {
		acc = acc<<8 | int(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			vals = append(vals, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		vals = append(vals, byte(acc<<(5-bits))&31)
	}
	chk := uint32(1)
	poly := func(v byte) {
		gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
		b := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (b>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	for _, c := range []byte(hrp) {
		poly(c >> 5)
	}
	poly(0)
	for _, c := range []byte(hrp) {
		poly(c & 31)
	}
	for _, v := range vals {
		poly(v)
	}
	for i := 0; i < 6; i++ {
		poly(0)
	}
	chk ^= 1
	for i := 0; i < 6; i++ {
		vals = append(vals, byte(chk>>(5*(5-i)))&31)
	}
	out := hrp + "1"
	for _, v := range vals {
		out += string(bech32Charset[v])
	}
	return out
}

func makeKeyFixtures() []keyFixture {
	fixtureRSA = must(rsa.GenerateKey(rand.Reader, 2048))
	fixtureEC = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	_, edKey := must2(ed25519.GenerateKey(rand.Reader))
	x25519 := must(ecdh.X25519().GenerateKey(rand.Reader))

	var fx []keyFixture
	pkcs1 := x509.MarshalPKCS1PrivateKey(fixtureRSA)
	fx = append(fx,
		pemFixture("rsa-pkcs1", "RSA PRIVATE KEY", pkcs1, KindRSAPKCS1),
		pemFixture("rsa-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(fixtureRSA)), KindRSAPKCS8),
		pemFixture("ec-sec1", "EC PRIVATE KEY", must(x509.MarshalECPrivateKey(fixtureEC)), KindECSEC1),
		pemFixture("ec-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(fixtureEC)), KindECPKCS8),
		pemFixture("ed25519-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(edKey)), KindEd25519PKCS8),
		pemFixture("x25519-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(x25519)), KindX25519PKCS8),
	)
	// DSA: the structure only (crypto/dsa parameter generation is slow and deprecated).
	dsaDER := derSeq(derInt([]byte{0}), derInt(randBytes(128)), derInt(randBytes(20)), derInt(randBytes(128)), derInt(randBytes(128)), derInt(randBytes(20)))
	fx = append(fx, pemFixture("dsa", "DSA PRIVATE KEY", dsaDER, KindDSA))
	// Encrypted PKCS#8: PBES2 algorithm identifier and ciphertext.
	pbes2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	encDER := derSeq(derSeq(pbes2, derSeq(derSeq(), derSeq())), derTLV(0x04, randBytes(1216)))
	fx = append(fx, pemFixture("encrypted-pkcs8", "ENCRYPTED PRIVATE KEY", encDER, KindEncryptedPKCS8))

	//lint:ignore SA1019 legacy PEM encryption is exactly what must be detected
	legacy := must(x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", pkcs1, []byte("pw"), x509.PEMCipherAES256)) //nolint:staticcheck
	legacyText := string(pem.EncodeToMemory(legacy))
	fx = append(fx, keyFixture{name: "rsa-legacy-encrypted", text: legacyText, kind: "encrypted RSA private key (legacy PEM, Proc-Type 4,ENCRYPTED)", material: legacy.Bytes, body: pemBody(legacyText), multiline: true})

	for _, k := range []struct {
		name string
		key  any
		pass []byte
	}{{"openssh-ed25519", edKey, nil}, {"openssh-rsa", fixtureRSA, nil}, {"openssh-ecdsa", fixtureEC, nil}, {"openssh-encrypted", edKey, []byte("pw")}} {
		var blk *pem.Block
		if k.pass != nil {
			blk = must(ssh.MarshalPrivateKeyWithPassphrase(k.key, "me@example", k.pass))
		} else {
			blk = must(ssh.MarshalPrivateKey(k.key, "me@example"))
		}
		text := string(pem.EncodeToMemory(blk))
		kind := KindOpenSSH
		if k.pass != nil {
			kind = KindOpenSSHEncrypted
		}
		fx = append(fx, keyFixture{name: k.name, text: text, kind: kind, material: blk.Bytes, body: pemBody(text), multiline: true})
	}

	// OpenPGP: a v4 secret-key packet (old format, tag 5) with an RSA-like body: a
	// 2048-bit modulus (its top bit set, as the MPI's bit count says), e = 65537, and
	// usage octet 0 before the secret part.
	pgpN := randBytes(256)
	pgpN[0] |= 0x80
	pgpBody := concat([]byte{4}, []byte{0x5f, 0, 0, 0}, []byte{1}, []byte{0x08, 0x00}, pgpN, []byte{0, 0x11, 1, 0, 1}, []byte{0}, randBytes(600))
	pgpPacketBytes := concat([]byte{0x95, byte(len(pgpBody) >> 8), byte(len(pgpBody))}, pgpBody)
	pgpB64 := base64.StdEncoding.EncodeToString(pgpPacketBytes)
	pgpText := "-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: test key\n\n" + wrap(pgpB64, 64) + "\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n"
	fx = append(fx, keyFixture{name: "pgp", text: pgpText, kind: KindPGP, material: pgpPacketBytes, body: pgpB64, multiline: true})

	// SSH.com (SSH2) encrypted private key.
	ssh2 := randBytes(600)
	copy(ssh2, []byte{0x3f, 0x6f, 0xf9, 0xeb, 0, 0, 0x02, 0x58})
	ssh2B64 := base64.StdEncoding.EncodeToString(ssh2)
	ssh2Text := "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: \"2048-bit rsa, me@example\"\n" + wrap(ssh2B64, 70) + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n"
	fx = append(fx, keyFixture{name: "ssh2", text: ssh2Text, kind: KindSSH2, material: ssh2, body: ssh2B64, multiline: true})

	// PuTTY (unencrypted ed25519).
	edPub := edKey.Public().(ed25519.PublicKey)
	pubBlob := sshWire([]byte("ssh-ed25519"), edPub)
	privBlob := sshWire(edKey.Seed())
	privB64 := base64.StdEncoding.EncodeToString(privBlob)
	puttyText := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20260101\nPublic-Lines: 2\n" +
		wrap(base64.StdEncoding.EncodeToString(pubBlob), 64) + "\nPrivate-Lines: 1\n" + privB64 + "\nPrivate-MAC: " + hex.EncodeToString(randBytes(32)) + "\n"
	fx = append(fx, keyFixture{name: "putty", text: puttyText, kind: KindPuTTY, material: privBlob, body: privB64, multiline: true})

	// OpenVPN static key.
	ovpn := randBytes(256)
	ovpnHex := hex.EncodeToString(ovpn)
	ovpnText := "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n" + wrap(ovpnHex, 32) + "\n-----END OpenVPN Static key V1-----\n"
	fx = append(fx, keyFixture{name: "openvpn", text: ovpnText, kind: KindOpenVPNStatic, material: ovpn, body: ovpnHex, multiline: true})

	// age.
	ageKey := randBytes(32)
	ageText := strings.ToUpper(bech32Encode("age-secret-key-", ageKey))
	fx = append(fx, keyFixture{name: "age", text: "# created: 2026-01-01\n" + ageText + "\n", kind: KindAge, material: ageKey, body: ageText[len("AGE-SECRET-KEY-1"):]})

	// JWKs.
	d := fixtureEC.D.FillBytes(make([]byte, 32))
	dB64 := base64.RawURLEncoding.EncodeToString(d)
	jwk := fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q,"d":%q}`,
		base64.RawURLEncoding.EncodeToString(fixtureEC.X.Bytes()), base64.RawURLEncoding.EncodeToString(fixtureEC.Y.Bytes()), dB64)
	fx = append(fx, keyFixture{name: "jwk-ec", text: jwk, kind: KindJWKPrivate + " (kty EC)", material: d, body: dB64})
	octK := randBytes(32)
	octB64 := base64.RawURLEncoding.EncodeToString(octK)
	fx = append(fx, keyFixture{name: "jwk-oct", text: `{"keys":[{"kty":"oct","alg":"HS256","k":"` + octB64 + `"}]}`, kind: KindJWKSymmetric, material: octK, body: octB64})

	// Google service-account key file.
	saDER := must(x509.MarshalPKCS8PrivateKey(fixtureRSA))
	saPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saDER}))
	sa := must(json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": "demo", "private_key_id": "abc123",
		"private_key": saPEM, "client_email": "sa@demo.iam.gserviceaccount.com", "client_id": "1234567890",
		"token_uri": "https://oauth2.googleapis.com/token",
	}, "", "  "))
	fx = append(fx, keyFixture{name: "google-sa", text: string(sa), kind: KindGoogleSA, material: saDER, body: pemBody(saPEM)})
	return fx
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// publicMaterial is text that must pass: public keys, certificates, CSRs, CRLs and
// parameter blocks, generated at test time.
func publicMaterial(t testing.TB) map[string]string {
	keyFixtures(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	certDER := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &fixtureEC.PublicKey, fixtureEC))
	cert := must(x509.ParseCertificate(certDER))
	csrDER := must(x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, fixtureEC))
	crlDER := must(x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, cert, fixtureEC))
	enc := func(label string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: label, Bytes: der}))
	}
	certPEM := enc("CERTIFICATE", certDER)
	sshPub := must(ssh.NewPublicKey(&fixtureRSA.PublicKey))
	return map[string]string{
		"certificate":           certPEM,
		"certificate-bundle":    strings.Repeat(certPEM, 4),
		"csr":                   enc("CERTIFICATE REQUEST", csrDER),
		"crl":                   enc("X509 CRL", crlDER),
		"public-key-pkix":       enc("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&fixtureRSA.PublicKey))),
		"public-key-pkcs1":      enc("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&fixtureRSA.PublicKey)),
		"ssh-authorized-key":    string(ssh.MarshalAuthorizedKey(sshPub)),
		"ec-parameters":         enc("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}),
		"dh-parameters":         enc("DH PARAMETERS", derSeq(derInt(randBytes(256)), derInt([]byte{2}))),
		"cabundle-base64":       base64.StdEncoding.EncodeToString([]byte(certPEM)),
		"cert-der-base64":       base64.StdEncoding.EncodeToString(certDER),
		"placeholder-dots":      "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n",
		"placeholder-words":     "-----BEGIN PRIVATE KEY-----\n<paste your private key here>\n-----END PRIVATE KEY-----",
		"placeholder-x":         "-----BEGIN OPENSSH PRIVATE KEY-----\n" + strings.Repeat("x", 70) + "\n-----END OPENSSH PRIVATE KEY-----",
		"truncated-body":        truncatedKey(t),
		"no-end-marker":         strings.SplitAfter(keyFixtures(t)[0].text, "\n")[0] + "MIIEowIBAAKCAQEA",
		"age-public":            "age1" + strings.Repeat("q", 58),
		"age-placeholder":       "AGE-SECRET-KEY-1XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
		"openvpn-truncated":     "-----BEGIN OpenVPN Static key V1-----\n0123456789abcdef\n-----END OpenVPN Static key V1-----",
		"jwt":                   "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"random-base64":         base64.StdEncoding.EncodeToString(randBytes(900)),
		"image-digest":          "registry.example/agent@sha256:" + hex.EncodeToString(randBytes(32)),
		"jwk-public":            fmt.Sprintf(`{"kty":"RSA","n":%q,"e":"AQAB"}`, base64.RawURLEncoding.EncodeToString(fixtureRSA.N.Bytes())),
		"google-external":       `{"type":"external_account","audience":"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","token_url":"https://sts.googleapis.com/v1/token","credential_source":{"file":"/var/run/secrets/openshell/token"}}`,
		"google-sa-placeholder": `{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nREDACTED\n-----END PRIVATE KEY-----\n","client_email":"a@b.c"}`,
		"pgp-public":            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + wrap(base64.StdEncoding.EncodeToString(concat([]byte{0x99, 0x01, 0x0d, 4}, randBytes(268))), 64) + "\n-----END PGP PUBLIC KEY BLOCK-----\n",
	}
}

func truncatedKey(t testing.TB) string {
	text := keyFixtures(t)[0].text
	lines := strings.Split(text, "\n")
	return strings.Join(lines[:4], "\n") + "\n" + lines[len(lines)-2] + "\n"
}

func pemEncode(label string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: label, Bytes: der})
}

func x509MarshalPKCS1Public() []byte { return x509.MarshalPKCS1PublicKey(&fixtureRSA.PublicKey) }

func x509MarshalPKIX() []byte { return must(x509.MarshalPKIXPublicKey(&fixtureEC.PublicKey)) }
