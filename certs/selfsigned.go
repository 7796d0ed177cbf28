package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is a CA and a serving certificate signed by it, PEM-encoded. It keeps the CA's
// key in memory (never written out) so Renew can issue the next serving certificate.
type Bundle struct {
	CAPEM   []byte
	CertPEM []byte
	KeyPEM  []byte

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// ServiceHosts are the names a webhook Service is reached by inside a cluster, plus
// 127.0.0.1 and localhost for a process on the same machine.
func ServiceHosts(service, namespace, clusterDomain string) []string {
	svc := service + "." + namespace + ".svc"
	return []string{svc, svc + "." + clusterDomain, service + "." + namespace, service, "localhost", "127.0.0.1"}
}

// SelfSigned makes a fresh CA and a serving certificate for hosts (DNS names or IP
// addresses), valid for validFor.
func SelfSigned(hosts []string, validFor time.Duration) (*Bundle, error) {
	if len(hosts) == 0 {
		return nil, errors.New("self-signed certificate: no host names")
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sandbox-webhook dev CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	b := &Bundle{CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), ca: ca, caKey: caKey}
	return b.Renew(hosts, validFor)
}

// Renew issues a new serving certificate and key for hosts from the same CA, as
// cert-manager's CA issuer does on renewal: clients that trust CAPEM trust both.
func (b *Bundle) Renew(hosts []string, validFor time.Duration) (*Bundle, error) {
	if len(hosts) == 0 {
		return nil, errors.New("serving certificate: no host names")
	}
	if b.caKey == nil {
		return nil, errors.New("serving certificate: this bundle has no CA key to sign with")
	}
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating serving key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, b.ca, &key.PublicKey, b.caKey)
	if err != nil {
		return nil, fmt.Errorf("signing serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		CAPEM:   b.CAPEM,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		ca:      b.ca,
		caKey:   b.caKey,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// WriteServing writes the serving certificate and key into dir as certName and keyName,
// each replaced atomically (write, then rename) so a watching server never reads half a
// pair of files.
func (b *Bundle) WriteServing(dir, certName, keyName string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{keyName, b.KeyPEM, 0o600}, {certName, b.CertPEM, 0o644}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// Fingerprint is the SHA-256 of the first certificate in certPEM, for logs.
func Fingerprint(certPEM []byte) string {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return ""
	}
	sum := sha256.Sum256(block.Bytes)
	return "SHA256:" + hex.EncodeToString(sum[:8])
}
