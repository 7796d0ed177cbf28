package policy

import (
	"bytes"
	"crypto/sha256"
	"math/bits"
)

// Stage 4, recognize: OpenPGP secret keys, armored ("-----BEGIN PGP PRIVATE KEY
// BLOCK-----") or as the bytes of a secret-key packet.

// examinePGP handles an armored PGP private key: headers, a blank line, base64 and a
// "=XXXX" checksum line.
func (s *keyScanner) examinePGP(body []byte) {
	lines := splitLines(body)
	var payload [][]byte
	// Line-structured armor: everything after the last header line.
	last, nonBlank := -1, 0
	for i, l := range lines {
		if bytes.IndexByte(l, ':') >= 0 {
			last = i
		}
		if len(bytes.TrimSpace(l)) > 0 {
			nonBlank++
		}
	}
	// The marker lines may stand alone around one line of headers and payload.
	if nonBlank > 1 {
		payload = lines[last+1:]
	} else {
		// One line (folded or without separators): the payload is the run of
		// space-separated tokens after the headers.
		line := bytes.Join(lines, []byte(" "))
		if last >= 0 {
			if c := bytes.LastIndexByte(line, ':'); c >= 0 {
				line = line[c+1:]
			}
		}
		payload = bytes.Fields(line)
	}
	var b64 []byte
	for _, l := range payload {
		l = bytes.TrimSpace(l)
		if len(l) == 5 && l[0] == '=' {
			continue // checksum
		}
		b64 = append(b64, l...)
	}
	// Checksum glued to the payload.
	if n := len(b64); n > 5 && b64[n-5] == '=' && b64[n-4] != '=' {
		b64 = b64[:n-5]
	}
	b64 = bytes.TrimRight(b64, "=")
	// Header values in a one-line armor: try the payload from each token boundary.
	for try := 0; try < 8 && len(b64) >= 16; try++ {
		if !s.spend(len(b64)) {
			return
		}
		if data, ok := cleanBase64(b64); ok {
			switch pgpPacket(data) {
			case pgpSecret:
				s.add(KindPGP, sha256.Sum256(data), false)
				return
			case pgpPublic:
				s.add(KindMalformedPublic, sha256.Sum256(data), true)
				return
			}
		}
		k := bytes.IndexFunc(b64[1:], func(r rune) bool { return r == 'l' || r == 'n' || r == 'x' })
		if k < 0 {
			return
		}
		b64 = b64[k+1:]
	}
}

type pgpKind int

const (
	pgpNone pgpKind = iota
	pgpSecret
	pgpPublic
)

// pgpPacket recognises an OpenPGP secret or public key packet: a packet header whose
// length fits the data, then the layout of a key packet of version 3 to 6 with a known
// public-key algorithm, its public fields parsed in full (MPIs in their minimal form),
// and for a secret key a valid S2K usage octet after them. Random values of 48 to 96
// bytes pass a header and a version byte alone several times in 100,000; they
// essentially never pass the whole layout.
func pgpPacket(b []byte) pgpKind {
	tag, body, ok := pgpHeader(b)
	if !ok {
		return pgpNone
	}
	switch tag {
	case 5, 7:
		rest, ok := pgpPublicPart(body)
		if !ok || len(rest) < 3 || !pgpS2KUsage(rest[0]) {
			// The usage octet, then secret material or S2K fields.
			return pgpNone
		}
		return pgpSecret
	case 6, 14:
		if _, ok := pgpPublicPart(body); ok {
			return pgpPublic
		}
	}
	return pgpNone
}

// pgpHeader reads the header of the packet at the start of b (old or new format) and
// returns its tag and body. A key packet has a definite length: partial and
// indeterminate lengths are not read.
func pgpHeader(b []byte) (byte, []byte, bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, nil, false
	}
	var tag byte
	var n, off int
	if b[0]&0x40 != 0 { // new format
		tag = b[0] & 0x3f
		switch l := int(b[1]); {
		case l < 192:
			n, off = l, 2
		case l < 224:
			if len(b) < 3 {
				return 0, nil, false
			}
			n, off = (l-192)<<8+int(b[2])+192, 3
		case l == 255:
			if len(b) < 6 {
				return 0, nil, false
			}
			n, off = int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5]), 6
		default:
			return 0, nil, false
		}
	} else {
		tag = (b[0] >> 2) & 0x0f
		switch b[0] & 3 {
		case 0:
			n, off = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return 0, nil, false
			}
			n, off = int(b[1])<<8|int(b[2]), 3
		case 2:
			if len(b) < 5 {
				return 0, nil, false
			}
			n, off = int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]), 5
		default:
			return 0, nil, false
		}
	}
	if n < 0 || n > len(b)-off {
		return 0, nil, false
	}
	return tag, b[off : off+n], true
}

// pgpPublicPart parses the public part of a key packet's body (RFC 4880 5.5.2, RFC 9580
// 5.5.2, and version 5 of LibrePGP) and returns what follows it.
func pgpPublicPart(body []byte) ([]byte, bool) {
	if len(body) < 1 {
		return nil, false
	}
	var algo byte
	var rest []byte
	switch v := body[0]; v {
	case 3: // version, creation time, validity days, algorithm
		if len(body) < 8 {
			return nil, false
		}
		algo, rest = body[7], body[8:]
		return pgpAlgorithmFields(algo, rest)
	case 4: // version, creation time, algorithm
		if len(body) < 6 {
			return nil, false
		}
		algo, rest = body[5], body[6:]
		return pgpAlgorithmFields(algo, rest)
	case 5, 6: // version, creation time, algorithm, octet count of the public fields
		if len(body) < 10 {
			return nil, false
		}
		algo = body[5]
		n := int(body[6])<<24 | int(body[7])<<16 | int(body[8])<<8 | int(body[9])
		rest = body[10:]
		if n < 0 || n > len(rest) {
			return nil, false
		}
		after, ok := pgpAlgorithmFields(algo, rest[:n])
		if !ok || len(after) != 0 {
			return nil, false
		}
		return rest[n:], true
	}
	return nil, false
}

// pgpAlgorithmFields parses the public fields of algorithm algo at the start of b and
// returns what follows them; an algorithm RFC 4880 and RFC 9580 do not define is not
// a key.
func pgpAlgorithmFields(algo byte, b []byte) ([]byte, bool) {
	mpis := 0
	switch algo {
	case 1, 2, 3: // RSA: n, e
		mpis = 2
	case 16: // Elgamal: p, g, y
		mpis = 3
	case 17: // DSA: p, q, g, y
		mpis = 4
	case 18, 19, 22: // ECDH, ECDSA, EdDSA (legacy): curve OID, point
		var ok bool
		if b, ok = pgpCurveOID(b); !ok {
			return nil, false
		}
		if b, ok = pgpReadMPI(b); !ok {
			return nil, false
		}
		if algo == 18 {
			// KDF parameters: their size, then reserved octet, hash and cipher.
			if len(b) < 1 || b[0] < 3 || b[0] == 0xff || int(b[0]) > len(b)-1 {
				return nil, false
			}
			b = b[1+int(b[0]):]
		}
		return b, true
	case 25, 27: // X25519, Ed25519
		return pgpFixed(b, 32)
	case 26: // X448
		return pgpFixed(b, 56)
	case 28: // Ed448
		return pgpFixed(b, 57)
	default:
		return nil, false
	}
	for i := 0; i < mpis; i++ {
		var ok bool
		if b, ok = pgpReadMPI(b); !ok {
			return nil, false
		}
	}
	return b, true
}

func pgpFixed(b []byte, n int) ([]byte, bool) {
	if len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// pgpReadMPI reads one multiprecision integer: a two-octet bit count, then the octets
// of a number whose highest set bit is the one the count says.
func pgpReadMPI(b []byte) ([]byte, bool) {
	if len(b) < 3 {
		return nil, false
	}
	nbits := int(b[0])<<8 | int(b[1])
	n := (nbits + 7) / 8
	if nbits == 0 || n > len(b)-2 || bits.Len8(b[2]) != nbits-8*(n-1) {
		return nil, false
	}
	return b[2+n:], true
}

// pgpCurveOID reads a curve OID as a key packet holds it: one octet of length (neither
// 0 nor 0xff), then the OID's DER content without tag and length.
func pgpCurveOID(b []byte) ([]byte, bool) {
	if len(b) < 1 {
		return nil, false
	}
	n := int(b[0])
	if n == 0 || n == 0xff || n > len(b)-1 {
		return nil, false
	}
	oid := b[1 : 1+n]
	// Every curve is under 1.2 or 1.3 (0x2a, 0x2b), and the last arc ends its encoding.
	if oid[0] != 0x2a && oid[0] != 0x2b || oid[n-1]&0x80 != 0 {
		return nil, false
	}
	return b[1+n:], true
}

// pgpS2KUsage recognises the octet that says how a secret key is protected: 0 (not
// encrypted), 253 (AEAD), 254 (CFB with a SHA-1 check), 255 (CFB with a checksum), or
// a symmetric algorithm (the legacy form).
func pgpS2KUsage(c byte) bool {
	switch c {
	case 0, 253, 254, 255:
		return true
	case 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13:
		// IDEA, TripleDES, CAST5, Blowfish, AES-128/192/256, Twofish, Camellia-128/192/256
		return true
	}
	return false
}
