package policy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/pbkdf2"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// Values that have the shape of a key without being one: each must pass, while the
// keys beside them are still rejected. Random values come from fixed-seed streams, so
// a value the detector misjudges fails every run, and the failure names the seed and
// the value's index.

const (
	// pgpNoiseSeed seeds the random values that must not read as PGP secret keys.
	pgpNoiseSeed = 20260611
	// jwkSeed seeds the JWKs' random members (EC scalars, oct keys).
	jwkSeed = 20260612
	// digestSeed seeds the data whose digests are wrapped in DigestInfo.
	digestSeed = 20260613
)

// falseAlarmConfigMap is a ConfigMap whose data holds the given values.
func falseAlarmConfigMap(data map[string]any) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "values", "namespace": "team-a"}, "data": data}
}

// wantOnlyKeys fails unless the rejecting findings are exactly those with the wanted
// fingerprints, one each.
func wantOnlyKeys(t *testing.T, obj map[string]any, kind string, want ...[]byte) {
	t.Helper()
	findings, err := corpusDetect(t, obj, kind)
	if err != nil {
		t.Fatalf("denied with an error: %v", err)
	}
	rejecting := RejectingKeys(findings)
	wanted := map[string]bool{}
	for _, m := range want {
		wanted[keyFingerprint(sha256.Sum256(m))] = true
	}
	got := map[string]bool{}
	for _, f := range rejecting {
		if !wanted[f.Fingerprint] || got[f.Fingerprint] {
			t.Errorf("unexpected rejecting finding %v", f)
		}
		got[f.Fingerprint] = true
	}
	for fp := range wanted {
		if !got[fp] {
			t.Errorf("key %s not found; findings %v", fp, findings)
		}
	}
}

// digestInfo is the DER of a PKCS#1 DigestInfo: the digest algorithm (OID and NULL
// parameters) and the digest.
func digestInfo(oid, digest []byte) []byte {
	return derSeq(derSeq(derTLV(tagOID, oid), []byte{0x05, 0x00}), derTLV(tagOctets, digest))
}

// TestFalseAlarmDigestInfoIsNotEncryptedPKCS8 checks that a DigestInfo, which has the
// shape of an EncryptedPrivateKeyInfo (an algorithm and an OCTET STRING), is no key,
// while encrypted PKCS#8 keys under the encryption schemes tools use still are.
func TestFalseAlarmDigestInfoIsNotEncryptedPKCS8(t *testing.T) {
	rng := rand.New(rand.NewPCG(digestSeed, 0))
	data := randomBytes(rng, 1024)
	s1, s256, s384, s512, m5 := sha1.Sum(data), sha256.Sum256(data), sha512.Sum384(data), sha512.Sum512(data), md5.Sum(data)
	nist := func(last byte) []byte { return []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last} }
	infos := map[string][]byte{
		"sha1":   digestInfo([]byte{0x2b, 0x0e, 0x03, 0x02, 0x1a}, s1[:]),
		"sha256": digestInfo(nist(1), s256[:]),
		"sha384": digestInfo(nist(2), s384[:]),
		"sha512": digestInfo(nist(3), s512[:]),
		"md5":    digestInfo([]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05}, m5[:]),
		// The algorithm without its NULL parameters, which RFC 8017 also allows.
		"sha256-no-null": derSeq(derSeq(derTLV(tagOID, nist(1))), derTLV(tagOctets, s256[:])),
	}
	all := map[string]any{}
	for name, der := range infos {
		b64 := base64.StdEncoding.EncodeToString(der)
		all[name] = b64
		t.Run(name, func(t *testing.T) {
			if r := classifyKeyBytes(der); r.kind != "" {
				t.Fatalf("DigestInfo classified as %q", r.kind)
			}
			for label, v := range map[string]string{
				"base64":          b64,
				"base64-url":      strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(b64), "="),
				"after-equals":    "SIGNATURE_DIGEST=" + b64,
				"base64-depth-2":  corpusB64(b64),
				"in-text":         "digest: " + b64 + "\nsigned-by: release",
				"doubled-in-text": b64 + " " + b64,
			} {
				t.Run(label, func(t *testing.T) {
					corpusWantAllow(t, falseAlarmConfigMap(map[string]any{"digest": v}), "ConfigMap")
				})
			}
		})
	}
	t.Run("all-in-one-configmap", func(t *testing.T) {
		corpusWantAllow(t, falseAlarmConfigMap(all), "ConfigMap")
	})

	// An encrypted PKCS#8 key as openssl pkcs8 -topk8 -v2 aes-256-cbc writes it.
	priv, err := ecdh.P256().NewPrivateKey(randomScalar(rng))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	salt, iv := randomBytes(rng, 16), randomBytes(rng, 16)
	kek, err := pbkdf2.Key(sha256.New, "correct horse", salt, 2048, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	pad := 16 - len(plain)%16
	ct := append(append([]byte(nil), plain...), bytesOf(byte(pad), pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	oid := func(b ...byte) []byte { return derTLV(tagOID, b) }
	pbes2 := derSeq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d), derSeq(
		derSeq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c), derSeq(derTLV(tagOctets, salt), derInt([]byte{0x08, 0x00}),
			derSeq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09), []byte{0x05, 0x00}))),
		derSeq(oid(0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a), derTLV(tagOctets, iv))))
	encrypted := map[string][]byte{
		"pbes2-pbkdf2-aes256": derSeq(pbes2, derTLV(tagOctets, ct)),
		// The framing of the other schemes; the detector does not decrypt.
		"pbes1-sha1-des": derSeq(derSeq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0a),
			derSeq(derTLV(tagOctets, salt[:8]), derInt([]byte{0x08, 0x00}))), derTLV(tagOctets, ct)),
		"pkcs12-sha-3des": derSeq(derSeq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03),
			derSeq(derTLV(tagOctets, salt[:8]), derInt([]byte{0x08, 0x00}))), derTLV(tagOctets, ct)),
	}
	for name, der := range encrypted {
		t.Run("encrypted-pkcs8-"+name, func(t *testing.T) {
			if r := classifyKeyBytes(der); r.kind != KindEncryptedPKCS8 {
				t.Fatalf("classified as %q, want %q", r.kind, KindEncryptedPKCS8)
			}
			for label, v := range map[string]string{
				"pem":        string(pemEncode("ENCRYPTED PRIVATE KEY", der)),
				"headerless": base64.StdEncoding.EncodeToString(der),
			} {
				t.Run(label, func(t *testing.T) {
					wantOnlyKeys(t, falseAlarmConfigMap(map[string]any{"key": v, "digest": all["sha256"]}), "ConfigMap", der)
				})
			}
		})
	}
}

// bytesOf is n bytes of value c.
func bytesOf(c byte, n int) []byte { return []byte(strings.Repeat(string([]byte{c}), n)) }

// randomScalar is 32 bytes from rng that make a valid P-256 private key.
func randomScalar(rng *rand.Rand) []byte {
	for {
		d := randomBytes(rng, 32)
		if _, err := ecdh.P256().NewPrivateKey(d); err == nil {
			return d
		}
	}
}

// TestFalseAlarmRandomBytesAreNotPGPKeys checks that random values of 48 to 96 bytes,
// base64 in ConfigMap data, are never taken for PGP secret keys (a packet header and a
// version byte alone let about 7 in 100,000 through), and neither are random bodies in
// PGP private key armor.
func TestFalseAlarmRandomBytesAreNotPGPKeys(t *testing.T) {
	const (
		values   = 100000
		perBatch = 1000
	)
	rng := rand.New(rand.NewPCG(pgpNoiseSeed, 0))
	for batch := 0; batch < values/perBatch; batch++ {
		data := make(map[string]any, perBatch)
		for i := batch * perBatch; i < (batch+1)*perBatch; i++ {
			data[fmt.Sprintf("v%06d", i)] = base64.StdEncoding.EncodeToString(randomBytes(rng, 48+rng.IntN(49)))
		}
		findings, err := corpusDetect(t, falseAlarmConfigMap(data), "ConfigMap")
		if err != nil {
			t.Fatalf("seed %d, values %d to %d: denied with an error: %v", pgpNoiseSeed, batch*perBatch, (batch+1)*perBatch-1, err)
		}
		for _, f := range RejectingKeys(findings) {
			i, err := strconv.Atoi(strings.TrimPrefix(f.Field, "data.v"))
			if err != nil {
				t.Fatalf("seed %d: finding at an unexpected field: %v", pgpNoiseSeed, f)
			}
			t.Errorf("seed %d, value %d (%d bytes of base64) rejected as %s", pgpNoiseSeed, i, len(data[f.Field[len("data."):]].(string)), f.Kind)
		}
	}

	// The same noise in armor: at most a malformed block, never a key.
	armorRng := rand.New(rand.NewPCG(pgpNoiseSeed, 1))
	const armored = 10000
	for batch := 0; batch < armored/perBatch; batch++ {
		data := make(map[string]any, perBatch)
		for i := batch * perBatch; i < (batch+1)*perBatch; i++ {
			body := base64.StdEncoding.EncodeToString(randomBytes(armorRng, 48+armorRng.IntN(200)))
			data[fmt.Sprintf("a%06d", i)] = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + wrap(body, 64) + "\n-----END PGP PRIVATE KEY BLOCK-----\n"
		}
		findings, err := corpusDetect(t, falseAlarmConfigMap(data), "ConfigMap")
		if err != nil {
			t.Fatalf("seed %d (stream 1), armored values %d to %d: denied with an error: %v", pgpNoiseSeed, batch*perBatch, (batch+1)*perBatch-1, err)
		}
		for _, f := range RejectingKeys(findings) {
			t.Errorf("seed %d (stream 1), armored value %s rejected as %s", pgpNoiseSeed, strings.TrimPrefix(f.Field, "data.a"), f.Kind)
		}
	}
}

// TestFalseAlarmPGPKeysStillRejected checks that the PGP secret keys of the fixtures and
// the corpus, and secret-key packets of every layout the check reads, are still keys,
// armored and as headerless base64.
func TestFalseAlarmPGPKeysStillRejected(t *testing.T) {
	rng := rand.New(rand.NewPCG(pgpNoiseSeed, 2))
	packets := map[string][]byte{}
	for _, k := range keyFixtures(t) {
		if k.kind == KindPGP {
			packets["fixture-"+k.name] = k.material
		}
	}
	c := corpus(t)
	for _, k := range c.keys {
		if strings.HasPrefix(k.name, "pgp-") {
			der, err := base64.StdEncoding.DecodeString(k.body)
			if err != nil {
				t.Fatal(err)
			}
			packets["corpus-"+k.name] = der
		}
	}
	if len(packets) < 3 {
		t.Fatalf("want the PGP fixture and corpus keys, got %d", len(packets))
	}
	created := []byte{0x66, 0x00, 0x00, 0x00}
	top := func(n int) []byte { b := randomBytes(rng, n); b[0] |= 0x80; return b }
	edPub, edPriv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdh.P256().NewPrivateKey(randomScalar(rng))
	if err != nil {
		t.Fatal(err)
	}
	xPriv, err := ecdh.X25519().GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256 := []byte{0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	cv25519 := []byte{0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01}
	// S2K: usage 254, AES-256, iterated and salted S2K with SHA-256, an IV, then the
	// encrypted secret part.
	s2k := concat([]byte{254, 9, 3, 8}, randomBytes(rng, 8), []byte{0xff}, randomBytes(rng, 16), randomBytes(rng, 60))
	plainSecret := func(secret []byte) []byte { return concat([]byte{0}, secret, pgpChecksum(secret)) }
	v6 := func(algo byte, public, secret []byte) []byte {
		n := len(public)
		return concat([]byte{6}, created, []byte{algo, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, public, secret)
	}
	bodies := map[string][]byte{
		"v4-ecdsa-p256-s2k":   concat([]byte{4}, created, []byte{19}, p256, pgpMPI(ecPriv.PublicKey().Bytes()), s2k),
		"v4-ecdh-cv25519":     concat([]byte{4}, created, []byte{18}, cv25519, pgpMPI(append([]byte{0x40}, xPriv.PublicKey().Bytes()...)), []byte{3, 1, 8, 7}, plainSecret(pgpMPI(xPriv.Bytes()))),
		"v4-dsa":              concat([]byte{4}, created, []byte{17}, pgpMPI(top(256)), pgpMPI(top(32)), pgpMPI(top(256)), pgpMPI(top(256)), plainSecret(pgpMPI(top(32)))),
		"v4-elgamal":          concat([]byte{4}, created, []byte{16}, pgpMPI(top(256)), pgpMPI([]byte{5}), pgpMPI(top(256)), s2k),
		"v3-rsa":              concat([]byte{3}, created, []byte{0, 0, 1}, pgpMPI(top(128)), pgpMPI([]byte{1, 0, 1}), plainSecret(pgpMPI(top(128)))),
		"v4-ed25519-native":   concat([]byte{4}, created, []byte{27}, edPub, []byte{0}, edPriv.Seed(), pgpChecksum(edPriv.Seed())),
		"v6-ed25519":          v6(27, edPub, concat([]byte{0}, edPriv.Seed())),
		"v6-x25519-aead":      v6(25, xPriv.PublicKey().Bytes(), concat([]byte{253, 30, 9, 2, 4}, randomBytes(rng, 16), randomBytes(rng, 48))),
		"v6-ed448":            v6(28, randomBytes(rng, 57), concat([]byte{0}, randomBytes(rng, 57))),
		"v5-ecdsa-p256-clear": concat([]byte{5}, created, []byte{19, 0, 0, 0, byte(len(p256) + 2 + 65)}, p256, pgpMPI(ecPriv.PublicKey().Bytes()), []byte{0, 0, 0, 0, 34}, pgpMPI(ecPriv.Bytes())),
	}
	for name, body := range bodies {
		packets["layout-"+name] = concat(pgpNewPacket(5, body), pgpNewPacket(13, []byte("Layout User <user@example.com>")))
		packets["layout-"+name+"-subkey"] = pgpNewPacket(7, body)
	}
	for name, pkt := range packets {
		t.Run(name, func(t *testing.T) {
			if pgpPacket(pkt) != pgpSecret {
				t.Fatalf("not read as a PGP secret key")
			}
			armored, _ := pgpArmor("PRIVATE KEY", pkt)
			for label, v := range map[string]string{
				"armored":    armored,
				"headerless": base64.StdEncoding.EncodeToString(pkt),
			} {
				t.Run(label, func(t *testing.T) {
					wantOnlyKeys(t, falseAlarmConfigMap(map[string]any{"key": v}), "ConfigMap", pkt)
				})
			}
		})
	}
}

// b64Std and b64URL encode a JWK member.
var (
	b64Std = base64.StdEncoding.EncodeToString
	b64URL = base64.RawURLEncoding.EncodeToString
)

// jwkPlaceholders are private members that hold no key: filler of the right length
// for a P-256 scalar, words, markers and nothing.
var jwkPlaceholders = map[string]string{
	"x-filler":      strings.Repeat("x", 43),
	"a-filler":      strings.Repeat("A", 43),
	"a-filler-std":  strings.Repeat("A", 43) + "=",
	"a-filler-long": strings.Repeat("A", 342),
	"x-filler-long": strings.Repeat("x", 342),
	"pattern":       strings.Repeat("abcd", 11),
	"changeme":      "changeme",
	"marker":        "<private exponent>",
	"replace-me":    "REPLACE_ME",
	"ellipsis":      "...",
	"empty":         "",
	"env-reference": "${JWK_PRIVATE}",
	"redacted":      "REDACTED",
	"short-random":  "dGhpcyBpcyBub3Qgb",
}

// TestFalseAlarmJWKPlaceholderIsNotPrivate checks JWKs whose private member is a
// placeholder, each next to a real private JWK of the same type (and an EC key whose d
// is standard base64): the real keys are rejected, the placeholders are not.
func TestFalseAlarmJWKPlaceholderIsNotPrivate(t *testing.T) {
	rng := rand.New(rand.NewPCG(jwkSeed, 0))
	ecKey := func() (d, x, y []byte) {
		d = randomScalar(rng)
		priv, err := ecdh.P256().NewPrivateKey(d)
		if err != nil {
			t.Fatal(err)
		}
		pub := priv.PublicKey().Bytes() // 0x04, x, y
		return d, pub[1:33], pub[33:]
	}
	d, x, y := ecKey()
	// A second EC key whose d in standard base64 has '+' or '/' and padding.
	var stdD, stdX, stdY []byte
	for stdD == nil || !strings.ContainsAny(b64Std(stdD), "+/") {
		stdD, stdX, stdY = ecKey()
	}
	rsaKey, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	octK := randomBytes(rng, 32)
	edPub, edPriv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPublic := map[string]any{"kty": "RSA", "n": b64URL(rsaKey.N.Bytes()), "e": b64URL(big.NewInt(int64(rsaKey.E)).Bytes())}
	withMember := func(base map[string]any, name, value string) map[string]any {
		out := map[string]any{name: value}
		for k, v := range base {
			out[k] = v
		}
		return out
	}
	ecPublic := map[string]any{"kty": "EC", "crv": "P-256", "x": b64URL(x), "y": b64URL(y)}
	okpPublic := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64URL(edPub)}
	keys := []struct {
		name     string
		jwk      map[string]any
		material []byte
		public   map[string]any // the same type, for its placeholder
		member   string
	}{
		{"ec", withMember(ecPublic, "d", b64URL(d)), d, ecPublic, "d"},
		{"ec-std-base64", map[string]any{"kty": "EC", "crv": "P-256", "x": b64Std(stdX), "y": b64Std(stdY), "d": b64Std(stdD)}, stdD, ecPublic, "d"},
		{"rsa", withMember(withMember(withMember(rsaPublic, "d", b64URL(rsaKey.D.Bytes())), "p", b64URL(rsaKey.Primes[0].Bytes())), "q", b64URL(rsaKey.Primes[1].Bytes())),
			rsaKey.D.Bytes(), rsaPublic, "d"},
		{"oct", map[string]any{"kty": "oct", "alg": "HS256", "k": b64URL(octK)}, octK, map[string]any{"kty": "oct", "alg": "HS256"}, "k"},
		{"okp-ed25519", withMember(okpPublic, "d", b64URL(edPriv.Seed())), edPriv.Seed(), okpPublic, "d"},
	}
	for _, r := range keys {
		t.Run(r.name+"/alone", func(t *testing.T) {
			wantOnlyKeys(t, falseAlarmConfigMap(map[string]any{"jwk.json": string(must(json.Marshal(r.jwk)))}), "ConfigMap", r.material)
		})
		for pname, p := range jwkPlaceholders {
			placeholder := withMember(r.public, r.member, p)
			t.Run(r.name+"/"+pname, func(t *testing.T) {
				jwks := map[string]any{"keys": []any{placeholder, r.jwk}}
				// As JSON text in a ConfigMap, alone and beside the real key.
				wantOnlyKeys(t, falseAlarmConfigMap(map[string]any{"placeholder.json": string(must(json.Marshal(placeholder)))}), "ConfigMap")
				wantOnlyKeys(t, falseAlarmConfigMap(map[string]any{"jwks.json": string(must(json.Marshal(jwks)))}), "ConfigMap", r.material)
				// As structured fields: the finding names the real key's member.
				obj := map[string]any{"apiVersion": "example.com/v1", "kind": "Signer", "metadata": map[string]any{"name": "s"}, "spec": jwks}
				findings, err := corpusDetect(t, obj, "Signer")
				if err != nil {
					t.Fatal(err)
				}
				rejecting := RejectingKeys(findings)
				if want := "spec.keys[1]." + r.member; len(rejecting) != 1 || rejecting[0].Field != want {
					t.Fatalf("want one finding at %s, got %v", want, rejecting)
				}
			})
		}
	}
}

// TestFalseAlarmJWKMemberLengths checks the lengths a private member needs by key type
// and curve: random bytes one short of them are no key, random bytes of the length are.
func TestFalseAlarmJWKMemberLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(jwkSeed, 1))
	for _, c := range []struct {
		kty, crv, member string
		length           int // a key's length
		shortest         int // the fewest bytes that count
	}{
		{"EC", "P-256", "d", 32, 31},
		{"EC", "secp256k1", "d", 32, 31},
		{"EC", "P-384", "d", 48, 47},
		{"EC", "P-521", "d", 66, 65},
		{"OKP", "Ed25519", "d", 32, 32},
		{"OKP", "X25519", "d", 32, 32},
		{"OKP", "Ed448", "d", 57, 57},
		{"OKP", "X448", "d", 56, 56},
		{"RSA", "", "d", 256, 64},
		{"oct", "", "k", 32, 16},
	} {
		t.Run(c.kty+"-"+c.crv, func(t *testing.T) {
			for _, n := range []int{c.length, c.shortest, c.shortest - 1} {
				m := randomBytes(rng, n)
				jwk := map[string]any{"kty": c.kty, c.member: b64URL(m)}
				if c.crv != "" {
					jwk["crv"] = c.crv
				}
				obj := falseAlarmConfigMap(map[string]any{"jwk.json": string(must(json.Marshal(jwk)))})
				if n >= c.shortest {
					wantOnlyKeys(t, obj, "ConfigMap", m)
				} else {
					wantOnlyKeys(t, obj, "ConfigMap")
				}
			}
		})
	}
}

// TestFalseAlarmIsFillerNeverCallsRandomBytesFiller checks the filler test against
// random members of every length a key has (fixed seed): none is taken for filler.
func TestFalseAlarmIsFillerNeverCallsRandomBytesFiller(t *testing.T) {
	rng := rand.New(rand.NewPCG(jwkSeed, 2))
	for i := 0; i < 20000; i++ {
		n := 16 + rng.IntN(1024)
		if b := randomBytes(rng, n); isFiller(b) {
			t.Fatalf("seed %d (stream 2), value %d (%d bytes) taken for filler", jwkSeed, i, n)
		}
	}
	for _, b := range [][]byte{bytesOf(0, 32), bytesOf(0xc7, 1024), []byte(strings.Repeat("0123456789abcdef", 4)), []byte(strings.Repeat("ab", 20) + "c")} {
		if !isFiller(b) {
			t.Errorf("%q not taken for filler", b)
		}
	}
}
