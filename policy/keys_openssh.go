package policy

import (
	"bytes"
)

// Stage 4, recognize decoded bytes: the OpenSSH private key container
// ("openssh-key-v1"), and SSH public keys in wire format, which are not keys.

// sshString reads one uint32-length-prefixed string.
func sshString(b []byte) ([]byte, []byte, bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	if n > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

func classifyOpenSSH(b []byte) keyBytes {
	b = b[len("openssh-key-v1\x00"):]
	cipher, b, ok := sshString(b)
	if !ok {
		return keyBytes{}
	}
	var kdf, kdfOpts []byte
	if kdf, b, ok = sshString(b); !ok {
		return keyBytes{}
	}
	if kdfOpts, b, ok = sshString(b); !ok || len(b) < 4 {
		return keyBytes{}
	}
	_, _ = kdf, kdfOpts
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	b = b[4:]
	if n == 0 || n > 16 {
		return keyBytes{}
	}
	for i := uint32(0); i < n; i++ {
		if _, b, ok = sshString(b); !ok {
			return keyBytes{}
		}
	}
	priv, _, ok := sshString(b)
	if !ok || len(priv) < 8 {
		return keyBytes{}
	}
	if string(cipher) == "none" {
		// Unencrypted: the section starts with two equal check integers.
		if !bytes.Equal(priv[0:4], priv[4:8]) {
			return keyBytes{}
		}
		return keyBytes{kind: KindOpenSSH}
	}
	if len(priv)%8 != 0 {
		return keyBytes{}
	}
	return keyBytes{kind: KindOpenSSHEncrypted}
}

// isSSHPublicBlob recognises an SSH public key in wire format ("ssh-rsa", ...).
func isSSHPublicBlob(b []byte) bool {
	name, rest, ok := sshString(b)
	if !ok || len(name) < 7 || len(name) > 64 || len(rest) < 16 {
		return false
	}
	return bytes.HasPrefix(name, []byte("ssh-")) || bytes.HasPrefix(name, []byte("ecdsa-")) || bytes.HasPrefix(name, []byte("sk-"))
}
