package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
)

// repository uploads the package as an agent binary (and, for -method
// url, serves it from the bench too) and enters it in the firmware
// repository: a c8y_Firmware with one c8y_FirmwareBinary version.
func (r *run) repository(ctx context.Context) error {
	c := r.cfg
	pkg := c.packageBytes()
	file := fmt.Sprintf("%s_%s.bin", c.name, c.version)
	id, err := r.uploadBinary(ctx, file, pkg)
	if err != nil {
		return err
	}
	r.binaryID, r.pkgURL = id, "binary:"+id
	if methods[c.method].external {
		if r.pkgSrv, err = servePackage(file, pkg); err != nil {
			return err
		}
		r.pkgURL = r.pkgSrv.url
	}
	var fw, ver struct {
		ID string `json:"id"`
	}
	if err := r.call(ctx, "POST", "/inventory/managedObjects", map[string]any{
		"name": c.name, "type": "c8y_Firmware", "description": "firmware campaign bench", "c8y_Filter": map[string]string{"type": "c8y_lwm2m"},
	}, &fw); err != nil {
		return err
	}
	if err := r.call(ctx, "POST", "/inventory/managedObjects", map[string]any{
		"type": "c8y_FirmwareBinary", "c8y_Firmware": map[string]string{"version": c.version, "url": r.pkgURL},
	}, &ver); err != nil {
		return err
	}
	return r.call(ctx, "POST", "/inventory/managedObjects/"+fw.ID+"/childAdditions", map[string]any{"managedObject": map[string]string{"id": ver.ID}}, nil)
}

// uploadBinary stores data as a binary of the agent and returns its id.
func (r *run) uploadBinary(ctx context.Context, name string, data []byte) (string, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	obj, _ := json.Marshal(map[string]string{"name": name, "type": "application/octet-stream"})
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="object"`)
	h.Set("Content-Type", "application/json")
	part, err := w.CreatePart(h)
	if err != nil {
		return "", err
	}
	_, _ = part.Write(obj)
	if part, err = w.CreateFormFile("file", name); err != nil {
		return "", err
	}
	_, _ = part.Write(data)
	if err := w.Close(); err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	err = r.raw(ctx, "POST", "/inventory/binaries", w.FormDataContentType(), &body, &out)
	if err == nil && out.ID == "" {
		err = fmt.Errorf("upload of %s: no id in the answer", name)
	}
	return out.ID, err
}

// raw sends body of contentType to the agent's API and decodes the
// answer into out.
func (r *run) raw(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	return machine.Send(ctx, client, r.agent.HTTP, password, method, path, contentType, body, out)
}

// importFleet registers the devices with one bulk registration file.
func (r *run) importFleet(ctx context.Context, devs []device) error {
	var res struct {
		All      int `json:"numberOfAll"`
		Failed   int `json:"numberOfFailed"`
		Failures []struct {
			DeviceID string `json:"deviceId"`
			Reason   string `json:"failureReason"`
		} `json:"failedCreationList"`
	}
	if err := r.raw(ctx, "POST", "/devicecontrol/bulkNewDeviceRequests", "text/csv", bytes.NewReader(r.cfg.csv(devs, r.agent.CoAP, r.agent.CoAPS)), &res); err != nil {
		return err
	}
	if res.All != len(devs) || res.Failed > 0 {
		first := ""
		if len(res.Failures) > 0 {
			first = fmt.Sprintf(" (first: %s: %s)", res.Failures[0].DeviceID, res.Failures[0].Reason)
		}
		return fmt.Errorf("import: %d of %d lines read, %d failed%s", res.All, len(devs), res.Failed, first)
	}
	return nil
}

// startSimulators runs one simulator process per part of the fleet,
// each with its devices' lines of the registration file and a source
// address of its own (127.0.1.x).
func (r *run) startSimulators(ctx context.Context, devs []device) error {
	for p, part := range r.cfg.split(devs) {
		path := filepath.Join(r.agent.Dir, fmt.Sprintf("sim-%d.csv", p))
		if err := os.WriteFile(path, r.cfg.csv(part, r.agent.CoAP, r.agent.CoAPS), 0o600); err != nil {
			return err
		}
		args := append(r.cfg.simArgs(part, path, fmt.Sprintf("127.0.1.%d", p+1)), "--rate", fmt.Sprint(r.regRate))
		sim := exec.CommandContext(ctx, r.bin, args...)
		sim.Stdout, sim.Stderr = io.Discard, os.Stderr
		if r.https != nil {
			// the devices trust the agent's certificate as a real
			// device's trust store would
			sim.Env = append(os.Environ(), "SSL_CERT_FILE="+r.https.cert)
		}
		if err := sim.Start(); err != nil {
			return fmt.Errorf("start simulator %d: %w", p, err)
		}
		r.sims = append(r.sims, sim)
	}
	return nil
}

// group creates a device group holding every device, in the fleet's
// order, and returns its id.
func (r *run) group(ctx context.Context, n int) (string, error) {
	ids, err := r.deviceIDs(ctx, n)
	if err != nil {
		return "", err
	}
	r.ids = ids
	var g struct {
		ID string `json:"id"`
	}
	if err := r.call(ctx, "POST", "/inventory/managedObjects", map[string]any{
		"name": "campaign fleet", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": map[string]any{},
	}, &g); err != nil {
		return "", err
	}
	for start := 0; start < len(ids); start += 2000 {
		refs := []map[string]any{}
		for _, id := range ids[start:min(len(ids), start+2000)] {
			refs = append(refs, map[string]any{"managedObject": map[string]string{"id": id}})
		}
		if err := r.call(ctx, "POST", "/inventory/managedObjects/"+g.ID+"/childAssets", map[string]any{"references": refs}, nil); err != nil {
			return "", err
		}
	}
	return g.ID, nil
}

// deviceIDs lists the managed objects of the fleet's devices, in the
// fleet's order.
func (r *run) deviceIDs(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	found := 0
	err := collect(ctx, r, "/inventory/managedObjects?type=c8y_lwm2m", "managedObjects", func(m struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}) {
		if i, ok := endpointIndex(m.Name); ok && i < n && ids[i] == "" {
			ids[i] = m.ID
			found++
		}
	})
	if err == nil && found != n {
		err = fmt.Errorf("%d of the fleet's %d devices found in the inventory", found, n)
	}
	return ids, err
}

// packageServer serves the package over HTTP from the bench's process:
// the external URL of -method url.
type packageServer struct {
	url      string
	srv      *http.Server
	requests atomic.Int64
	bytes    atomic.Int64
}

func servePackage(file string, pkg []byte) (*packageServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &packageServer{url: fmt.Sprintf("http://%s/fw/%s", l.Addr(), file)}
	mod := time.Now()
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/fw/"+file {
			http.NotFound(w, req)
			return
		}
		s.requests.Add(1)
		cw := &countingWriter{ResponseWriter: w, n: &s.bytes}
		http.ServeContent(cw, req, file, mod, bytes.NewReader(pkg))
	})}
	go func() { _ = s.srv.Serve(l) }() // ends with close
	return s, nil
}

func (s *packageServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// tlsFiles are the agent's certificate and key for -method https.
type tlsFiles struct{ cert, key string }

// writeTLSFiles makes a self-signed certificate for 127.0.0.1 in dir.
func writeTLSFiles(dir string) (*tlsFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "campaignbench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return f, os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}
