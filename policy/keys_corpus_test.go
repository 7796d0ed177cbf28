package policy

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/dsa" //nolint:staticcheck // DSA keys are still pasted and must be detected
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The corpus below is built independently of the matrix in keys_test.go: keys are
// generated at test time and written out the way people paste them, then placed in
// the objects an admission request carries. Every case either must be rejected or
// must be allowed, as README.md's "Private-key validation" says.

// corpusKey is one private key in one file format.
type corpusKey struct {
	name string
	text string
	// body is the secret part as encoded in text; no output may hold 8 characters of it.
	body string
	// kinds are accepted substrings of the finding's kind.
	kinds []string
	// pem marks "-----BEGIN ...-----" armored text.
	pem bool
}

// corpusSet is everything the corpus needs, generated once per test binary.
type corpusSet struct {
	keys      []corpusKey
	headless  []corpusKey // headerless base64 DER
	second    corpusKey   // another key, for values holding several blocks
	chain     string      // certificate chain, leaf first
	certDER   []byte
	rsa       *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	saJSON    string
	saPEMBody string
	public    map[string]string
}

var (
	corpusOnce sync.Once
	corpusData *corpusSet
)

func corpus(t *testing.T) *corpusSet {
	t.Helper()
	corpusOnce.Do(func() { corpusData = buildCorpus() })
	return corpusData
}

func corpusPEM(label string, headers map[string]string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: label, Headers: headers, Bytes: der}))
}

// corpusBody is the base64 between the markers of a PEM text, headers left out.
func corpusBody(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "-----") || strings.Contains(l, ": ") || strings.HasPrefix(l, "Proc-Type:") || strings.HasPrefix(l, "DEK-Info:") {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

func sshMPInt(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

func pgpMPI(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	bits := 0
	if len(b) > 0 {
		bits = (len(b)-1)*8 + big.NewInt(int64(b[0])).BitLen()
	}
	return append([]byte{byte(bits >> 8), byte(bits)}, b...)
}

func pgpNewPacket(tag byte, body []byte) []byte {
	n := len(body)
	switch {
	case n < 192:
		return concat([]byte{0xc0 | tag, byte(n)}, body)
	case n < 8384:
		n -= 192
		return concat([]byte{0xc0 | tag, byte(n>>8) + 192, byte(n)}, body)
	default:
		return concat([]byte{0xc0 | tag, 0xff, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body)
	}
}

func pgpCRC24(b []byte) []byte {
	crc := uint32(0xb704ce)
	for _, c := range b {
		crc ^= uint32(c) << 16
		for i := 0; i < 8; i++ {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864cfb
			}
		}
	}
	return []byte{byte(crc >> 16), byte(crc >> 8), byte(crc)}
}

func pgpArmor(kind string, packets []byte) (string, string) {
	body := base64.StdEncoding.EncodeToString(packets)
	return "-----BEGIN PGP " + kind + " BLOCK-----\nVersion: GnuPG v2\nComment: https://gnupg.org\n\n" + wrap(body, 64) + "\n=" +
		base64.StdEncoding.EncodeToString(pgpCRC24(packets)) + "\n-----END PGP " + kind + " BLOCK-----\n", body
}

func pgpChecksum(b []byte) []byte {
	var s uint16
	for _, c := range b {
		s += uint16(c)
	}
	return []byte{byte(s >> 8), byte(s)}
}

func buildCorpus() *corpusSet {
	c := &corpusSet{}
	c.rsa = must(rsa.GenerateKey(rand.Reader, 2048))
	c.ec = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	ec384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	_, c.ed = must2(ed25519.GenerateKey(rand.Reader))
	other := must(rsa.GenerateKey(rand.Reader, 2048))

	var params dsa.Parameters
	if err := dsa.GenerateParameters(&params, rand.Reader, dsa.L1024N160); err != nil {
		panic(err)
	}
	dsaKey := &dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: params}}
	if err := dsa.GenerateKey(dsaKey, rand.Reader); err != nil {
		panic(err)
	}

	// Certificates: a CA and a leaf, as a TLS bundle carries them.
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corpus CA"}, NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &c.ec.PublicKey, c.ec))
	caCert := must(x509.ParseCertificate(caDER))
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "svc.ns.svc"}, DNSNames: []string{"svc.ns.svc"}, NotBefore: now, NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER := must(x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &c.rsa.PublicKey, c.ec))
	c.certDER = leafDER
	c.chain = corpusPEM("CERTIFICATE", nil, leafDER) + corpusPEM("CERTIFICATE", nil, caDER)

	add := func(k corpusKey) { c.keys = append(c.keys, k) }
	addPEM := func(name, label string, headers map[string]string, der []byte, kinds ...string) string {
		text := corpusPEM(label, headers, der)
		add(corpusKey{name: name, text: text, body: corpusBody(text), kinds: kinds, pem: true})
		return text
	}

	pkcs1 := x509.MarshalPKCS1PrivateKey(c.rsa)
	pkcs8RSA := must(x509.MarshalPKCS8PrivateKey(c.rsa))
	sec1 := must(x509.MarshalECPrivateKey(c.ec))
	sec1384 := must(x509.MarshalECPrivateKey(ec384))
	pkcs8EC := must(x509.MarshalPKCS8PrivateKey(c.ec))
	pkcs8Ed := must(x509.MarshalPKCS8PrivateKey(c.ed))
	dsaDER := derSeq(derInt([]byte{0}), derInt(params.P.Bytes()), derInt(params.Q.Bytes()), derInt(params.G.Bytes()), derInt(dsaKey.Y.Bytes()), derInt(dsaKey.X.Bytes()))

	addPEM("pem-rsa-pkcs1", "RSA PRIVATE KEY", nil, pkcs1, "RSA private key")
	addPEM("pem-pkcs8-rsa", "PRIVATE KEY", nil, pkcs8RSA, "RSA private key")
	addPEM("pem-ec-sec1", "EC PRIVATE KEY", nil, sec1, "EC private key")
	addPEM("pem-pkcs8-ec", "PRIVATE KEY", nil, pkcs8EC, "EC private key")
	addPEM("pem-pkcs8-ed25519", "PRIVATE KEY", nil, pkcs8Ed, "Ed25519")
	addPEM("pem-dsa", "DSA PRIVATE KEY", nil, dsaDER, "DSA private key")
	// openssl ecparam -genkey writes the parameters before the key.
	ecParams := corpusPEM("EC PARAMETERS", nil, []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22})
	ecKey := corpusPEM("EC PRIVATE KEY", nil, sec1384)
	add(corpusKey{name: "pem-ec-sec1-with-params", text: ecParams + ecKey, body: corpusBody(ecKey), kinds: []string{"EC private key"}, pem: true})

	// Encrypted PKCS#8 as openssl pkcs8 -topk8 -v2 aes-256-cbc writes it.
	salt, iv := randBytes(16), randBytes(16)
	aesKey := must(pbkdf2.Key(sha256.New, "pw", salt, 2048, 32))
	padded := append([]byte(nil), pkcs8RSA...)
	pad := 16 - len(padded)%16
	for i := 0; i < pad; i++ {
		padded = append(padded, byte(pad))
	}
	block := must(aes.NewCipher(aesKey))
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	oidPBES2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	oidPBKDF2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c}
	oidHMACSHA256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09}
	oidAES256CBC := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}
	encPKCS8 := derSeq(
		derSeq(oidPBES2, derSeq(
			derSeq(oidPBKDF2, derSeq(derTLV(0x04, salt), derInt([]byte{0x08, 0x00}), derSeq(oidHMACSHA256, []byte{0x05, 0x00}))),
			derSeq(oidAES256CBC, derTLV(0x04, iv)))),
		derTLV(0x04, ct))
	addPEM("pem-encrypted-pkcs8", "ENCRYPTED PRIVATE KEY", nil, encPKCS8, "encrypted PKCS#8")

	//lint:ignore SA1019 legacy PEM encryption is what is pasted
	legacyRSA := must(x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", pkcs1, []byte("pw"), x509.PEMCipherAES128)) //nolint:staticcheck
	legacyRSAText := string(pem.EncodeToMemory(legacyRSA))
	add(corpusKey{name: "pem-legacy-encrypted-rsa", text: legacyRSAText, body: corpusBody(legacyRSAText), kinds: []string{"legacy PEM"}, pem: true})
	//lint:ignore SA1019 legacy PEM encryption is what is pasted
	legacyEC := must(x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", sec1, []byte("pw"), x509.PEMCipherDES)) //nolint:staticcheck
	legacyECText := string(pem.EncodeToMemory(legacyEC))
	add(corpusKey{name: "pem-legacy-encrypted-ec", text: legacyECText, body: corpusBody(legacyECText), kinds: []string{"legacy PEM"}, pem: true})

	for _, o := range []struct {
		name string
		key  any
		pass string
	}{{"openssh-ed25519", c.ed, ""}, {"openssh-rsa", c.rsa, ""}, {"openssh-ecdsa", ec384, ""}, {"openssh-ed25519-encrypted", c.ed, "pw"}, {"openssh-rsa-encrypted", c.rsa, "pw"}} {
		var blk *pem.Block
		kind := KindOpenSSH
		if o.pass == "" {
			blk = must(ssh.MarshalPrivateKey(o.key, "user@laptop"))
		} else {
			blk = must(ssh.MarshalPrivateKeyWithPassphrase(o.key, "user@laptop", []byte(o.pass)))
			kind = KindOpenSSHEncrypted
		}
		text := string(pem.EncodeToMemory(blk))
		add(corpusKey{name: o.name, text: text, body: corpusBody(text), kinds: []string{kind}, pem: true})
	}

	// OpenPGP: an EdDSA v4 secret key packet (new format, tag 5) and a user ID, and an
	// RSA one in the old packet format, armored with a CRC24 line and a Version header.
	created := []byte{0x66, 0x00, 0x00, 0x00}
	edPub := c.ed.Public().(ed25519.PublicKey)
	edOID := []byte{0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
	edPublicPart := concat([]byte{4}, created, []byte{22}, edOID, pgpMPI(append([]byte{0x40}, edPub...)))
	edSecret := pgpMPI(c.ed.Seed())
	pgpEd := concat(pgpNewPacket(5, concat(edPublicPart, []byte{0}, edSecret, pgpChecksum(edSecret))), pgpNewPacket(13, []byte("Corpus User <user@example.com>")))
	pgpEdText, pgpEdBody := pgpArmor("PRIVATE KEY", pgpEd)
	add(corpusKey{name: "pgp-ed25519", text: pgpEdText, body: pgpEdBody, kinds: []string{KindPGP}, pem: true})
	rsaPublicPart := concat([]byte{4}, created, []byte{1}, pgpMPI(c.rsa.N.Bytes()), pgpMPI(big.NewInt(int64(c.rsa.E)).Bytes()))
	u := new(big.Int).ModInverse(c.rsa.Primes[0], c.rsa.Primes[1])
	rsaSecret := concat(pgpMPI(c.rsa.D.Bytes()), pgpMPI(c.rsa.Primes[0].Bytes()), pgpMPI(c.rsa.Primes[1].Bytes()), pgpMPI(u.Bytes()))
	rsaPacketBody := concat(rsaPublicPart, []byte{0}, rsaSecret, pgpChecksum(rsaSecret))
	pgpRSA := concat([]byte{0x95, byte(len(rsaPacketBody) >> 8), byte(len(rsaPacketBody))}, rsaPacketBody, pgpNewPacket(13, []byte("Corpus User <user@example.com>")))
	pgpRSAText, pgpRSABody := pgpArmor("PRIVATE KEY", pgpRSA)
	add(corpusKey{name: "pgp-rsa", text: pgpRSAText, body: pgpRSABody, kinds: []string{KindPGP}, pem: true})

	// SSH.com (SSH2) encrypted private key.
	ssh2Inner := sshWire([]byte("if-modn{sign{rsa-pkcs1-sha1},encrypt{rsa-pkcs1v2-oaep}}"), []byte("3des-cbc"), randBytes(656))
	ssh2Blob := concat([]byte{0x3f, 0x6f, 0xf9, 0xeb}, []byte{0, 0, byte((len(ssh2Inner) + 8) >> 8), byte(len(ssh2Inner) + 8)}, ssh2Inner)
	ssh2B64 := base64.StdEncoding.EncodeToString(ssh2Blob)
	add(corpusKey{name: "ssh2-encrypted", text: "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nSubject: user\nComment: \"2048-bit rsa, user@host, Thu Jan 01 2026 00:00:00 +0000\"\n" +
		wrap(ssh2B64, 70) + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n", body: ssh2B64, kinds: []string{KindSSH2}})

	// PuTTY key files.
	rsaPubBlob := sshWire([]byte("ssh-rsa"), sshMPInt(big.NewInt(int64(c.rsa.E))), sshMPInt(c.rsa.N))
	rsaPrivBlob := sshWire(sshMPInt(c.rsa.D), sshMPInt(c.rsa.Primes[0]), sshMPInt(c.rsa.Primes[1]), sshMPInt(u))
	puttyV2 := func(enc string, priv []byte) string {
		macKey := sha1.Sum([]byte("putty-private-key-file-mac-key"))
		m := hmac.New(sha1.New, macKey[:])
		m.Write(sshWire([]byte("ssh-rsa"), []byte(enc), []byte("rsa-key-20260101"), rsaPubBlob, priv))
		pub := wrap(base64.StdEncoding.EncodeToString(rsaPubBlob), 64)
		pv := wrap(base64.StdEncoding.EncodeToString(priv), 64)
		return fmt.Sprintf("PuTTY-User-Key-File-2: ssh-rsa\nEncryption: %s\nComment: rsa-key-20260101\nPublic-Lines: %d\n%s\nPrivate-Lines: %d\n%s\nPrivate-MAC: %x\n",
			enc, strings.Count(pub, "\n")+1, pub, strings.Count(pv, "\n")+1, pv, m.Sum(nil))
	}
	add(corpusKey{name: "putty-v2-rsa-none", text: puttyV2("none", rsaPrivBlob), body: base64.StdEncoding.EncodeToString(rsaPrivBlob), kinds: []string{KindPuTTY}})
	encPriv := randBytes((len(rsaPrivBlob)/16 + 1) * 16)
	add(corpusKey{name: "putty-v2-rsa-aes256", text: puttyV2("aes256-cbc", encPriv), body: base64.StdEncoding.EncodeToString(encPriv), kinds: []string{KindPuTTYEncrypted}})
	edPubBlob := sshWire([]byte("ssh-ed25519"), edPub)
	edPrivBlob := sshWire(c.ed.Seed())
	puttyV3 := func(enc string, kdf string, priv []byte) string {
		m := hmac.New(sha256.New, nil)
		m.Write(sshWire([]byte("ssh-ed25519"), []byte(enc), []byte("eddsa-key-20260101"), edPubBlob, priv))
		return "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: " + enc + "\nComment: eddsa-key-20260101\nPublic-Lines: 2\n" +
			wrap(base64.StdEncoding.EncodeToString(edPubBlob), 64) + "\n" + kdf + "Private-Lines: 1\n" + base64.StdEncoding.EncodeToString(priv) +
			"\nPrivate-MAC: " + hex.EncodeToString(m.Sum(nil)) + "\n"
	}
	add(corpusKey{name: "putty-v3-ed25519-none", text: puttyV3("none", "", edPrivBlob), body: base64.StdEncoding.EncodeToString(edPrivBlob), kinds: []string{KindPuTTY}})
	encEd := randBytes(48)
	argon := "Key-Derivation: Argon2id\nArgon2-Memory: 8192\nArgon2-Passes: 13\nArgon2-Parallelism: 1\nArgon2-Salt: " + hex.EncodeToString(randBytes(16)) + "\n"
	add(corpusKey{name: "putty-v3-ed25519-aes256", text: puttyV3("aes256-cbc", argon, encEd), body: base64.StdEncoding.EncodeToString(encEd), kinds: []string{KindPuTTYEncrypted}})

	// OpenVPN static key: 16 lines of 32 hex digits.
	ovpnHex := hex.EncodeToString(randBytes(256))
	ovpn := "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n" + wrap(ovpnHex, 32) + "\n-----END OpenVPN Static key V1-----\n"
	add(corpusKey{name: "openvpn-static", text: ovpn, body: ovpnHex, kinds: []string{KindOpenVPNStatic}, pem: true})
	add(corpusKey{name: "openvpn-inline-tls-auth", text: "client\ndev tun\nproto udp\nremote vpn.example.com 1194\nkey-direction 1\n<tls-auth>\n" + ovpn + "</tls-auth>\n", body: ovpnHex, kinds: []string{KindOpenVPNStatic}, pem: true})

	// age identity file.
	ageSecret := randBytes(32)
	agePub := must(ecdh.X25519().NewPrivateKey(ageSecret)).PublicKey().Bytes()
	ageText := strings.ToUpper(bech32Encode("age-secret-key-", ageSecret))
	add(corpusKey{name: "age", text: "# created: 2026-01-01T00:00:00Z\n# public key: " + bech32Encode("age", agePub) + "\n" + ageText + "\n",
		body: ageText[len("AGE-SECRET-KEY-1"):], kinds: []string{KindAge}})

	// JWKs.
	b64u := base64.RawURLEncoding.EncodeToString
	jwkRSA := map[string]string{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": b64u(c.rsa.N.Bytes()), "e": "AQAB",
		"d": b64u(c.rsa.D.Bytes()), "p": b64u(c.rsa.Primes[0].Bytes()), "q": b64u(c.rsa.Primes[1].Bytes()),
		"dp": b64u(c.rsa.Precomputed.Dp.Bytes()), "dq": b64u(c.rsa.Precomputed.Dq.Bytes()), "qi": b64u(c.rsa.Precomputed.Qinv.Bytes())}
	jwkEC := map[string]string{"kty": "EC", "crv": "P-256", "x": b64u(c.ec.X.FillBytes(make([]byte, 32))), "y": b64u(c.ec.Y.FillBytes(make([]byte, 32))), "d": b64u(c.ec.D.FillBytes(make([]byte, 32)))}
	jwkOKP := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64u(edPub), "d": b64u(c.ed.Seed())}
	octK := randBytes(32)
	jwkOct := map[string]string{"kty": "oct", "alg": "HS256", "k": b64u(octK)}
	jsonText := func(v any) string { return string(must(json.MarshalIndent(v, "", "  "))) }
	add(corpusKey{name: "jwk-rsa", text: jsonText(jwkRSA), body: jwkRSA["d"], kinds: []string{KindJWKPrivate}})
	add(corpusKey{name: "jwk-ec", text: jsonText(jwkEC), body: jwkEC["d"], kinds: []string{KindJWKPrivate}})
	add(corpusKey{name: "jwk-okp-ed25519", text: jsonText(jwkOKP), body: jwkOKP["d"], kinds: []string{KindJWKPrivate}})
	add(corpusKey{name: "jwk-oct", text: jsonText(jwkOct), body: jwkOct["k"], kinds: []string{KindJWKSymmetric}})
	pubRSA := map[string]string{"kty": "RSA", "kid": "pub", "use": "sig", "n": jwkRSA["n"], "e": "AQAB"}
	add(corpusKey{name: "jwks-one-private", text: jsonText(map[string]any{"keys": []any{pubRSA, jwkEC}}), body: jwkEC["d"], kinds: []string{KindJWKPrivate}})

	// Google service-account key file.
	saPEM := corpusPEM("PRIVATE KEY", nil, pkcs8RSA)
	c.saPEMBody = corpusBody(saPEM)
	c.saJSON = jsonText(map[string]string{
		"type": "service_account", "project_id": "demo-project", "private_key_id": hex.EncodeToString(randBytes(20)),
		"private_key": saPEM, "client_email": "agent@demo-project.iam.gserviceaccount.com", "client_id": "103456789012345678901",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/agent%40demo-project.iam.gserviceaccount.com",
		"universe_domain":             "googleapis.com",
	})
	add(corpusKey{name: "google-sa", text: c.saJSON, body: c.saPEMBody, kinds: []string{KindGoogleSA}})

	// Headerless base64 DER, as pasted from the body of a PEM block.
	for _, h := range []struct {
		name string
		der  []byte
		kind string
	}{{"der-pkcs1", pkcs1, "RSA private key"}, {"der-pkcs8-rsa", pkcs8RSA, "RSA private key"}, {"der-pkcs8-ec", pkcs8EC, "EC private key"}, {"der-pkcs8-ed25519", pkcs8Ed, "Ed25519"}, {"der-sec1", sec1, "EC private key"}} {
		body := base64.StdEncoding.EncodeToString(h.der)
		c.headless = append(c.headless, corpusKey{name: h.name, text: body, body: body, kinds: []string{h.kind}})
	}

	secondText := corpusPEM("RSA PRIVATE KEY", nil, x509.MarshalPKCS1PrivateKey(other))
	c.second = corpusKey{name: "second", text: secondText, body: corpusBody(secondText)}
	c.public = corpusPublic(c, caCert, pgpPublicFrom(edPublicPart))
	return c
}

func pgpPublicFrom(publicPart []byte) string {
	text, _ := pgpArmor("PUBLIC KEY", concat(pgpNewPacket(6, publicPart), pgpNewPacket(13, []byte("Corpus User <user@example.com>"))))
	return text
}

func corpusJWT(k *rsa.PrivateKey) string {
	b64u := base64.RawURLEncoding.EncodeToString
	head := b64u([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`))
	claims := b64u([]byte(`{"iss":"https://issuer.example.com","sub":"system:serviceaccount:ns:agent","aud":["api"],"exp":1893456000,"iat":1767225600}`))
	d := sha256.Sum256([]byte(head + "." + claims))
	sig := must(rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:]))
	return head + "." + claims + "." + b64u(sig)
}

func corpusPublic(c *corpusSet, ca *x509.Certificate, pgpPublic string) map[string]string {
	csr := must(x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"svc.ns.svc"}}, c.rsa))
	crl := must(x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(3), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(9), RevocationTime: time.Now()}}}, ca, c.ec))
	sshRSA := must(ssh.NewPublicKey(&c.rsa.PublicKey))
	sshEd := must(ssh.NewPublicKey(c.ed.Public()))
	sshEC := must(ssh.NewPublicKey(&c.ec.PublicKey))
	b64u := base64.RawURLEncoding.EncodeToString
	truncate := func(label string, der []byte) string {
		body := base64.StdEncoding.EncodeToString(der)
		return "-----BEGIN " + label + "-----\n" + body[:40] + "\n-----END " + label + "-----\n"
	}
	sshPriv := must(ssh.MarshalPrivateKey(c.ed, "u@h"))
	sa := must(json.Marshal(map[string]string{"type": "service_account", "project_id": "demo", "private_key_id": "abc",
		"private_key": "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----\n", "client_email": "a@demo.iam.gserviceaccount.com"}))
	dockerCfg := must(json.Marshal(map[string]any{"auths": map[string]any{"registry.example.com": map[string]string{
		"username": "robot", "password": base64.StdEncoding.EncodeToString(randBytes(48)), "auth": base64.StdEncoding.EncodeToString([]byte("robot:" + hex.EncodeToString(randBytes(32))))}}}))
	return map[string]string{
		"certificate":          corpusPEM("CERTIFICATE", nil, c.certDER),
		"certificate-chain":    c.chain,
		"csr":                  corpusPEM("CERTIFICATE REQUEST", nil, csr),
		"csr-new":              corpusPEM("NEW CERTIFICATE REQUEST", nil, csr),
		"x509-crl":             corpusPEM("X509 CRL", nil, crl),
		"public-key-pkix-rsa":  corpusPEM("PUBLIC KEY", nil, must(x509.MarshalPKIXPublicKey(&c.rsa.PublicKey))),
		"public-key-pkix-ec":   corpusPEM("PUBLIC KEY", nil, must(x509.MarshalPKIXPublicKey(&c.ec.PublicKey))),
		"rsa-public-key":       corpusPEM("RSA PUBLIC KEY", nil, x509.MarshalPKCS1PublicKey(&c.rsa.PublicKey)),
		"authorized-keys":      string(ssh.MarshalAuthorizedKey(sshEd)) + string(ssh.MarshalAuthorizedKey(sshRSA)) + string(ssh.MarshalAuthorizedKey(sshEC)),
		"authorized-key-ed":    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshEd))) + " user@laptop",
		"ssh2-public-key":      "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"2048-bit RSA, converted by user@host from OpenSSH\"\n" + wrap(base64.StdEncoding.EncodeToString(sshRSA.Marshal()), 70) + "\n---- END SSH2 PUBLIC KEY ----\n",
		"pgp-public-key":       pgpPublic,
		"dh-parameters":        corpusPEM("DH PARAMETERS", nil, derSeq(derInt(randBytes(256)), derInt([]byte{2}))),
		"ec-parameters":        corpusPEM("EC PARAMETERS", nil, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}),
		"placeholder-angle":    "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----",
		"placeholder-dots":     "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n",
		"placeholder-redacted": "-----BEGIN EC PRIVATE KEY-----\nREDACTED\n-----END EC PRIVATE KEY-----\n",
		"placeholder-xxxx":     "-----BEGIN OPENSSH PRIVATE KEY-----\nxxxx\n-----END OPENSSH PRIVATE KEY-----\n",
		"placeholder-x-lines":  "-----BEGIN PRIVATE KEY-----\n" + strings.Repeat(strings.Repeat("x", 64)+"\n", 3) + "-----END PRIVATE KEY-----\n",
		"placeholder-sa":       string(sa),
		"placeholder-pgp":      "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n...\n-----END PGP PRIVATE KEY BLOCK-----\n",
		"placeholder-age":      "AGE-SECRET-KEY-1...",
		"truncated-pkcs1":      truncate("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(c.rsa)),
		"truncated-pkcs8":      truncate("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(c.rsa))),
		"truncated-sec1":       truncate("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(c.ec))),
		"truncated-openssh":    truncate("OPENSSH PRIVATE KEY", sshPriv.Bytes),
		"google-external":      `{"type":"external_account","audience":"//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","token_url":"https://sts.googleapis.com/v1/token","service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/agent@demo.iam.gserviceaccount.com:generateAccessToken","credential_source":{"file":"/var/run/service-account/token","format":{"type":"text"}}}`,
		"jwk-public-rsa":       fmt.Sprintf(`{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":"AQAB"}`, b64u(c.rsa.N.Bytes())),
		"jwk-public-ec":        fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q}`, b64u(c.ec.X.FillBytes(make([]byte, 32))), b64u(c.ec.Y.FillBytes(make([]byte, 32)))),
		"jwk-public-okp":       fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":%q}`, b64u(c.ed.Public().(ed25519.PublicKey))),
		"jwks-public":          fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"a","n":%q,"e":"AQAB"},{"kty":"EC","kid":"b","crv":"P-256","x":%q,"y":%q}]}`, b64u(c.rsa.N.Bytes()), b64u(c.ec.X.FillBytes(make([]byte, 32))), b64u(c.ec.Y.FillBytes(make([]byte, 32)))),
		"sha256-digest":        "sha256:" + hex.EncodeToString(randBytes(32)),
		"image-digest":         "registry.example.com/agent@sha256:" + hex.EncodeToString(randBytes(32)),
		"sha256-base64":        base64.StdEncoding.EncodeToString(randBytes(32)),
		"random-1k-base64":     base64.StdEncoding.EncodeToString(randBytes(1024)),
		"random-1k-base64-76":  wrap(base64.StdEncoding.EncodeToString(randBytes(1024)), 76),
		"random-1k-hex":        hex.EncodeToString(randBytes(1024)),
		"docker-config-json":   string(dockerCfg),
		"jwt":                  corpusJWT(c.rsa),
		"bearer-jwt":           "Authorization: Bearer " + corpusJWT(c.rsa),
		"age-recipient":        bech32Encode("age", randBytes(32)),
	}
}

// corpusEncoding is one way a key's text reaches a string field.
type corpusEncoding struct {
	name    string
	applies func(k corpusKey) bool
	encode  func(c *corpusSet, k corpusKey) string
	// several marks a value holding a second, different key.
	several bool
}

func corpusIsPEM(k corpusKey) bool { return k.pem }

var corpusPEMLabel = regexp.MustCompile(`-----(BEGIN|END) [A-Za-z0-9 ]+-----`)

func corpusB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var corpusEncodings = []corpusEncoding{
	{name: "literal", encode: func(_ *corpusSet, k corpusKey) string { return k.text }},
	{name: "missing-final-newline", encode: func(_ *corpusSet, k corpusKey) string { return strings.TrimRight(k.text, "\n") }},
	{name: "crlf", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", "\r\n") }},
	{name: "trailing-whitespace", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", " \t\n") }},
	{name: "indented-spaces", encode: func(_ *corpusSet, k corpusKey) string {
		return "    " + strings.ReplaceAll(strings.TrimRight(k.text, "\n"), "\n", "\n    ") + "\n"
	}},
	{name: "indented-tabs", encode: func(_ *corpusSet, k corpusKey) string {
		return "\t\t" + strings.ReplaceAll(strings.TrimRight(k.text, "\n"), "\n", "\n\t\t")
	}},
	{name: "text-around", encode: func(_ *corpusSet, k corpusKey) string {
		return "Here is the key for the agent:\n\n" + k.text + "\nPlease rotate it after the demo.\n"
	}},
	{name: "yaml-folded", encode: func(_ *corpusSet, k corpusKey) string {
		return strings.ReplaceAll(strings.TrimSpace(k.text), "\n", " ")
	}},
	{name: "escaped-newlines", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", `\n`) }},
	{name: "double-escaped-newlines", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", `\\n`) }},
	{name: "escaped-crlf", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", `\r\n`) }},
	{name: "one-line", encode: func(_ *corpusSet, k corpusKey) string { return strings.ReplaceAll(k.text, "\n", "") }},
	{name: "lowercase-label", applies: corpusIsPEM, encode: func(_ *corpusSet, k corpusKey) string {
		return corpusPEMLabel.ReplaceAllStringFunc(k.text, strings.ToLower)
	}},
	{name: "several-blocks", several: true, encode: func(c *corpusSet, k corpusKey) string { return k.text + c.second.text }},
	{name: "tls-bundle-chain-then-key", encode: func(c *corpusSet, k corpusKey) string { return c.chain + k.text }},
	{name: "combined-key-then-chain", encode: func(c *corpusSet, k corpusKey) string { return k.text + c.chain }},
	{name: "tls-bundle-one-line", encode: func(c *corpusSet, k corpusKey) string {
		return strings.ReplaceAll(c.chain+k.text, "\n", "")
	}},
	{name: "tls-bundle-escaped-newlines", encode: func(c *corpusSet, k corpusKey) string {
		return strings.ReplaceAll(c.chain+k.text, "\n", `\n`)
	}},
	{name: "base64-std", encode: func(_ *corpusSet, k corpusKey) string { return corpusB64(k.text) }},
	{name: "base64-std-raw", encode: func(_ *corpusSet, k corpusKey) string { return base64.RawStdEncoding.EncodeToString([]byte(k.text)) }},
	{name: "base64-url", encode: func(_ *corpusSet, k corpusKey) string { return base64.URLEncoding.EncodeToString([]byte(k.text)) }},
	{name: "base64-url-raw", encode: func(_ *corpusSet, k corpusKey) string { return base64.RawURLEncoding.EncodeToString([]byte(k.text)) }},
	{name: "base64-wrap-64", encode: func(_ *corpusSet, k corpusKey) string { return wrap(corpusB64(k.text), 64) }},
	{name: "base64-wrap-76-crlf", encode: func(_ *corpusSet, k corpusKey) string {
		return strings.ReplaceAll(wrap(corpusB64(k.text), 76), "\n", "\r\n")
	}},
	{name: "base64-after-assignment", encode: func(_ *corpusSet, k corpusKey) string { return "KEY=" + corpusB64(k.text) }},
	{name: "base64-in-json-field", encode: func(_ *corpusSet, k corpusKey) string {
		return `{"name":"agent","key":"` + corpusB64(k.text) + `","enabled":true}`
	}},
	{name: "base64-depth-2", encode: func(_ *corpusSet, k corpusKey) string { return corpusB64(corpusB64(k.text)) }},
	{name: "base64-depth-3", encode: func(_ *corpusSet, k corpusKey) string { return corpusB64(corpusB64(corpusB64(k.text))) }},
	{name: "percent-full", encode: func(_ *corpusSet, k corpusKey) string {
		var b strings.Builder
		for i := 0; i < len(k.text); i++ {
			fmt.Fprintf(&b, "%%%02x", k.text[i])
		}
		return b.String()
	}},
	{name: "percent-query", encode: func(_ *corpusSet, k corpusKey) string {
		return "https://vault.example.com/import?name=agent&key=" + url.QueryEscape(k.text) + "&v=1"
	}},
	{name: "percent-path-escape", encode: func(_ *corpusSet, k corpusKey) string { return url.PathEscape(k.text) }},
}

type corpusLocation struct {
	name  string
	build func(v string) (map[string]any, string)
}

func corpusContainer(v string) map[string]any {
	return map[string]any{"name": "agent", "image": "registry.example.com/agent:1.2", "env": []any{
		map[string]any{"name": "LOG_LEVEL", "value": "info"},
		map[string]any{"name": "AGENT_KEY", "value": v},
	}}
}

func corpusPod(spec map[string]any, meta map[string]any) map[string]any {
	if meta == nil {
		meta = map[string]any{"name": "agent", "namespace": "ns"}
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
}

var corpusLocations = []corpusLocation{
	{name: "pod-env-value", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{corpusContainer(v)}}, nil), "Pod"
	}},
	{name: "pod-args", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "a", "args": []any{"--verbose", "--key", v}}}}, nil), "Pod"
	}},
	{name: "pod-command", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "a", "command": []any{"/bin/sh", "-c", v}}}}, nil), "Pod"
	}},
	{name: "configmap-data", build: func(v string) (map[string]any, string) {
		return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "agent-config"}, "data": map[string]any{"app.yaml": "mode: x", "key": v}}, "ConfigMap"
	}},
	{name: "sandbox-cr-deep-env", build: func(v string) (map[string]any, string) {
		return map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "metadata": map[string]any{"name": "sb"}, "spec": map[string]any{
			"podTemplate": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "agent"}}, "spec": map[string]any{"containers": []any{corpusContainer(v)}}}}}, "Sandbox"
	}},
	{name: "deployment-template", build: func(v string) (map[string]any, string) {
		return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"}, "spec": map[string]any{"replicas": 1,
			"selector": map[string]any{"matchLabels": map[string]any{"app": "a"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "a"}}, "spec": map[string]any{"containers": []any{corpusContainer(v)}}}}}, "Deployment"
	}},
	{name: "cronjob-jobtemplate", build: func(v string) (map[string]any, string) {
		return map[string]any{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": map[string]any{"name": "cj"}, "spec": map[string]any{"schedule": "0 * * * *",
			"jobTemplate": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"restartPolicy": "Never", "containers": []any{corpusContainer(v)}}}}}}}, "CronJob"
	}},
	{name: "annotation", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "a"}}},
			map[string]any{"name": "agent", "annotations": map[string]any{"example.com/agent-config": v}}), "Pod"
	}},
}

func corpusDetect(t *testing.T, obj map[string]any, kind string) ([]KeyFinding, error) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return DetectPrivateKeys(raw, kind, DefaultConfig())
}

// corpusWantReject fails unless the object is denied: at least want rejecting findings
// of an accepted kind, or a *KeyLimitError. No output may hold key material.
func corpusWantReject(t *testing.T, obj map[string]any, kind string, k corpusKey, want int) {
	t.Helper()
	findings, err := corpusDetect(t, obj, kind)
	if err != nil {
		var limit *KeyLimitError
		if !errors.As(err, &limit) {
			t.Fatalf("error instead of a finding: %v", err)
		}
		corpusNoMaterial(t, k.body, err.Error())
		return
	}
	rejecting := RejectingKeys(findings)
	if len(rejecting) == 0 {
		t.Fatalf("allowed: want a rejecting finding, got %v", findings)
	}
	if len(rejecting) < want {
		t.Errorf("want %d rejecting findings, got %v", want, rejecting)
	}
	kindOK := false
	for _, f := range rejecting {
		for _, w := range k.kinds {
			if strings.Contains(f.Kind, w) {
				kindOK = true
			}
		}
	}
	if !kindOK {
		t.Errorf("wrong kind: want one of %q, got %v", k.kinds, rejecting)
	}
	corpusNoMaterial(t, k.body, fmt.Sprint(findings), KeyDenialMessage(findings), KeyDenialMessage(rejecting))
}

func corpusWantAllow(t *testing.T, obj map[string]any, kind string) {
	t.Helper()
	findings, err := corpusDetect(t, obj, kind)
	if err != nil {
		t.Fatalf("denied with an error: %v", err)
	}
	if r := RejectingKeys(findings); len(r) != 0 {
		t.Fatalf("rejected: %v", r)
	}
}

func corpusNoMaterial(t *testing.T, body string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for i := 0; i+8 <= len(body); i++ {
			if strings.Contains(out, body[i:i+8]) {
				t.Fatalf("output holds 8 characters of the key body at offset %d", i)
			}
		}
	}
}

func TestCorpusRejectsEveryKeyFormatEncodingAndLocation(t *testing.T) {
	c := corpus(t)
	for _, k := range c.keys {
		for _, e := range corpusEncodings {
			if e.applies != nil && !e.applies(k) {
				continue
			}
			value := e.encode(c, k)
			want := 1
			if e.several {
				want = 2
			}
			for _, loc := range corpusLocations {
				t.Run(k.name+"/"+e.name+"/"+loc.name, func(t *testing.T) {
					obj, kind := loc.build(value)
					corpusWantReject(t, obj, kind, k, want)
				})
			}
		}
	}
}

func TestCorpusRejectsHeaderlessDER(t *testing.T) {
	c := corpus(t)
	encs := map[string]func(string) string{
		"base64-std":     func(s string) string { return s },
		"base64-wrap-64": func(s string) string { return wrap(s, 64) },
		"base64-url-raw": func(s string) string {
			return strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(s), "=")
		},
		"after-equals":    func(s string) string { return "TLS_KEY=" + s },
		"escaped-wrap-64": func(s string) string { return strings.ReplaceAll(wrap(s, 64), "\n", `\n`) },
		"base64-depth-2":  func(s string) string { return corpusB64(s) },
	}
	for _, k := range c.headless {
		for en, enc := range encs {
			value := enc(k.text)
			for _, loc := range corpusLocations {
				t.Run(k.name+"/"+en+"/"+loc.name, func(t *testing.T) {
					obj, kind := loc.build(value)
					corpusWantReject(t, obj, kind, k, 1)
				})
			}
		}
	}
}

func corpusKubeconfig(clientKeyData string) string {
	return "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: " + corpusB64(corpusData.chain) +
		"\n    server: https://10.0.0.1:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: admin\n  name: admin@prod\ncurrent-context: admin@prod\nusers:\n- name: admin\n  user:\n    client-certificate-data: " +
		corpusB64(corpusPEM("CERTIFICATE", nil, corpusData.certDER)) + "\n    client-key-data: " + clientKeyData + "\n"
}

func TestCorpusRejectsKubeconfigClientKeyData(t *testing.T) {
	c := corpus(t)
	for _, k := range c.keys {
		if !strings.HasPrefix(k.name, "pem-rsa-pkcs1") && !strings.HasPrefix(k.name, "pem-ec-sec1") && !strings.HasPrefix(k.name, "pem-pkcs8") {
			continue
		}
		kc := corpusKubeconfig(corpusB64(k.text))
		var kcJSON map[string]any
		cases := map[string]func() (map[string]any, string){
			"configmap-yaml": func() (map[string]any, string) {
				return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "kc"}, "data": map[string]any{"config": kc}}, "ConfigMap"
			},
			"env-base64":         func() (map[string]any, string) { return corpusLocations[0].build(corpusB64(kc)) },
			"env-literal":        func() (map[string]any, string) { return corpusLocations[0].build(kc) },
			"sandbox-env-base64": func() (map[string]any, string) { return corpusLocations[4].build(corpusB64(kc)) },
			"annotation-escaped": func() (map[string]any, string) { return corpusLocations[7].build(strings.ReplaceAll(kc, "\n", `\n`)) },
			"cr-structured": func() (map[string]any, string) {
				if kcJSON == nil {
					kcJSON = map[string]any{"users": []any{map[string]any{"name": "admin", "user": map[string]any{"client-key-data": corpusB64(k.text)}}}}
				}
				return map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "metadata": map[string]any{"name": "s"}, "spec": map[string]any{"kubeconfig": kcJSON}}, "Sandbox"
			},
		}
		for name, build := range cases {
			t.Run(k.name+"/kubeconfig/"+name, func(t *testing.T) {
				obj, kind := build()
				corpusWantReject(t, obj, kind, k, 1)
			})
		}
	}
}

func TestCorpusRejectsGoogleServiceAccountAndJWKAsStructuredFields(t *testing.T) {
	c := corpus(t)
	for _, k := range c.keys {
		if !strings.HasPrefix(k.name, "jwk") && k.name != "google-sa" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(k.text), &v); err != nil {
			t.Fatal(err)
		}
		objs := map[string]func() (map[string]any, string){
			"sandbox-spec": func() (map[string]any, string) {
				return map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "metadata": map[string]any{"name": "s"},
					"spec": map[string]any{"podTemplate": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "image": "a"}}}},
						"credentials": map[string]any{"provider": "gcp", "key": v}}}, "Sandbox"
			},
			"sandbox-spec-list": func() (map[string]any, string) {
				return map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "metadata": map[string]any{"name": "s"},
					"spec": map[string]any{"secrets": []any{map[string]any{"name": "x", "value": v}}}}, "Sandbox"
			},
		}
		for name, build := range objs {
			t.Run(k.name+"/structured/"+name, func(t *testing.T) {
				obj, kind := build()
				corpusWantReject(t, obj, kind, k, 1)
			})
		}
	}
}

func TestCorpusAllowsPublicMaterialPlaceholdersAndReferences(t *testing.T) {
	c := corpus(t)
	encs := []corpusEncoding{}
	for _, e := range corpusEncodings {
		switch e.name {
		case "literal", "crlf", "yaml-folded", "escaped-newlines", "double-escaped-newlines", "indented-spaces", "base64-std", "base64-wrap-76-crlf", "base64-depth-2", "percent-query":
			encs = append(encs, e)
		}
	}
	for name, text := range c.public {
		k := corpusKey{name: name, text: text}
		for _, e := range encs {
			value := e.encode(c, k)
			for _, loc := range corpusLocations {
				t.Run(name+"/"+e.name+"/"+loc.name, func(t *testing.T) {
					obj, kind := loc.build(value)
					corpusWantAllow(t, obj, kind)
				})
			}
		}
	}
}

func TestCorpusAllowsObjectsThatHoldNoKey(t *testing.T) {
	c := corpus(t)
	caBundle := corpusB64(c.chain)
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: " + caBundle + "\n    server: https://10.0.0.1:6443\n  name: prod\nusers:\n- name: sa\n  user:\n    token: " + corpusJWT(c.rsa) + "\n"
	webhook := func(kind string) map[string]any {
		return map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": map[string]any{"name": "w"},
			"webhooks": []any{map[string]any{"name": "w.example.com", "clientConfig": map[string]any{"caBundle": caBundle, "service": map[string]any{"name": "w", "namespace": "ns"}}}}}
	}
	keyText := c.keys[0].text
	cases := map[string]struct {
		obj  map[string]any
		kind string
	}{
		"validating-webhook-cabundle": {webhook("ValidatingWebhookConfiguration"), "ValidatingWebhookConfiguration"},
		"mutating-webhook-cabundle":   {webhook("MutatingWebhookConfiguration"), "MutatingWebhookConfiguration"},
		"apiservice-cabundle": {map[string]any{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": map[string]any{"name": "v1.x"},
			"spec": map[string]any{"caBundle": caBundle, "group": "x", "version": "v1"}}, "APIService"},
		"configmap-kubeconfig-ca-data":  {map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "kc"}, "data": map[string]any{"config": kc}}, "ConfigMap"},
		"env-kubeconfig-ca-data-base64": {corpusPod(map[string]any{"containers": []any{corpusContainer(corpusB64(kc))}}, nil), "Pod"},
		"configmap-ca-crt":              {map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "kube-root-ca.crt"}, "data": map[string]any{"ca.crt": c.chain}}, "ConfigMap"},
		"secret-string-data": {map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "tls"}, "type": "kubernetes.io/tls",
			"stringData": map[string]any{"tls.key": keyText, "tls.crt": c.chain}}, "Secret"},
		"secret-data": {map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "tls"}, "type": "kubernetes.io/tls",
			"data": map[string]any{"tls.key": corpusB64(keyText), "tls.crt": corpusB64(c.chain), "sa.json": corpusB64(c.saJSON)}}, "Secret"},
		"pod-secret-key-ref": {corpusPod(map[string]any{"containers": []any{map[string]any{"name": "a", "image": "a", "env": []any{
			map[string]any{"name": "AGENT_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "agent-key", "key": "tls.key"}}},
			map[string]any{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/google/key.json"}}}},
			"volumes": []any{map[string]any{"name": "k", "secret": map[string]any{"secretName": "agent-key"}}}}, nil), "Pod"},
		"configmap-docker-config": {map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "d"}, "data": map[string]any{"config.json": c.public["docker-config-json"]}}, "ConfigMap"},
		"pod-env-jwt":             {corpusPod(map[string]any{"containers": []any{corpusContainer(c.public["jwt"])}}, nil), "Pod"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) { corpusWantAllow(t, tc.obj, tc.kind) })
	}
}

// TestCorpusRejectsJWKNextToOtherText isolates what hides a JWK: the text after it.
func TestCorpusRejectsJWKNextToOtherText(t *testing.T) {
	c := corpus(t)
	cert := corpusPEM("CERTIFICATE", nil, c.certDER)
	for _, k := range c.keys {
		if k.name != "jwk-ec" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(k.text), &v); err != nil {
			t.Fatal(err)
		}
		compact := string(must(json.Marshal(v)))
		for name, value := range map[string]string{
			"compact-alone":                    compact,
			"text-then-compact":                "# signing key\n" + compact,
			"compact-then-certificate":         compact + "\n" + cert,
			"compact-then-text":                compact + "\n# rotate monthly\n",
			"compact-then-dashes":              compact + "\n-----\n",
			"compact-escaped-quotes":           strings.ReplaceAll(compact, `"`, `\"`),
			"pretty-escaped-newlines-no-space": strings.ReplaceAll(strings.ReplaceAll(k.text, "\n", `\n`), `\n  `, `\n`),
		} {
			t.Run(k.name+"/"+name+"/pod-env-value", func(t *testing.T) {
				obj, kind := corpusLocations[0].build(value)
				corpusWantReject(t, obj, kind, k, 1)
			})
		}
	}
}
