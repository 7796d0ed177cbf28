package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedServesTLSThatTheCATrusts(t *testing.T) {
	b, err := SelfSigned([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CAPEM) {
		t.Fatal("CA PEM not parsable")
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("%s: the CA does not verify the serving certificate: %v", host, err)
		}
		resp.Body.Close()
	}

	other, err := SelfSigned([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strange := x509.NewCertPool()
	strange.AppendCertsFromPEM(other.CAPEM)
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: strange}}}
	if _, err := client.Get("https://" + net.JoinHostPort("localhost", port)); err == nil {
		t.Fatal("a different CA verified the certificate: every bundle must have its own CA")
	}
}

func TestWriteServingReplacesFilesAndKeepsKeyPrivate(t *testing.T) {
	dir := t.TempDir()
	first, _ := SelfSigned([]string{"localhost"}, time.Hour)
	second, _ := SelfSigned([]string{"localhost"}, time.Hour)
	if err := first.WriteServing(dir, "tls.crt", "tls.key"); err != nil {
		t.Fatal(err)
	}
	if err := second.WriteServing(dir, "tls.crt", "tls.key"); err != nil {
		t.Fatal(err)
	}
	crt, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if Fingerprint(crt) != Fingerprint(second.CertPEM) || Fingerprint(crt) == Fingerprint(first.CertPEM) {
		t.Fatal("the second write did not replace the certificate")
	}
	info, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestRenewIssuesANewLeafFromTheSameCA(t *testing.T) {
	hosts := ServiceHosts("sandbox-webhook", "sandbox-webhook-system", "cluster.local")
	first, err := SelfSigned(hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	next, err := first.Renew(hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if string(next.CAPEM) != string(first.CAPEM) {
		t.Fatal("Renew changed the CA")
	}
	if Fingerprint(next.CertPEM) == Fingerprint(first.CertPEM) || string(next.KeyPEM) == string(first.KeyPEM) {
		t.Fatal("Renew returned the same certificate or key")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(first.CAPEM)
	for _, b := range []*Bundle{first, next} {
		block, _ := pem.Decode(b.CertPEM)
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"sandbox-webhook.sandbox-webhook-system.svc", "sandbox-webhook.sandbox-webhook-system.svc.cluster.local", "127.0.0.1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
				t.Errorf("certificate %s does not verify for %s under the CA: %v", Fingerprint(b.CertPEM), name, err)
			}
		}
	}
	if _, err := (&Bundle{CAPEM: first.CAPEM}).Renew(hosts, time.Hour); err == nil {
		t.Error("a bundle without the CA key renewed")
	}
}
