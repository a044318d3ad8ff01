package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With https-addr, the API answers over TLS, and a device that pulls
// firmware over HTTPS is given a URI on that port, from which the package
// downloads; with a certificate that does not load, the agent does not
// start and says why.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr, cfg.HTTPSAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "", ""
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := Start(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); _ = wait() }()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + a.HTTPSAddr.String()

	// a binary uploaded over HTTPS
	pkg := bytes.Repeat([]byte("firmware-"), 1000)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("object", `{"name":"fw.bin","type":"application/octet-stream"}`)
	fw, _ := mw.CreateFormFile("file", "fw.bin")
	_, _ = fw.Write(pkg)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", base+"/inventory/binaries", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("management/admin", cfg.AdminPassword)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var bin struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&bin)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || bin.ID == "" {
		t.Fatalf("upload over https: %d, id %q", resp.StatusCode, bin.ID)
	}

	uri, err := a.Firmware.Grant(ctx, firmware.Grant{Tenant: "management", DeviceID: "1", OperationID: "7",
		Source: firmware.Source{BinaryID: bin.ID}, Scheme: "https", Expires: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, base+"/fw/") {
		t.Fatalf("https grant %q, want it on %s", uri, base)
	}
	resp, err = client.Get(uri)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, pkg) {
		t.Fatalf("download over https: %d, %d bytes, want %d", resp.StatusCode, len(got), len(pkg))
	}
}

func TestHTTPSSettings(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	for _, tc := range []struct {
		name            string
		addr, cert, key string
		want            string
	}{
		{"files without port", "", certFile, keyFile, "set without https-addr"},
		{"port without files", "127.0.0.1:0", "", "", "needs tls-cert-file and tls-key-file"},
		{"key is no key", "127.0.0.1:0", certFile, certFile, "tls-cert-file"},
		{"bad address", "nowhere", certFile, keyFile, "https-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.HTTPSAddr, cfg.TLSCertFile, cfg.TLSKeyFile = tc.addr, tc.cert, tc.key
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
