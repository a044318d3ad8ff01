package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/app"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// `import devices` against a running agent: what operators see, and the
// exit status scripts rely on.
func TestImportDevices(t *testing.T) {
	cfg := config.Default()
	cfg.CoAPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := app.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = wait() }()

	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	_ = os.WriteFile(good, []byte("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode\n"+
		"m1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;m1;coap://h:5783;NO_SEC\n"), 0o600)
	_ = os.WriteFile(bad, []byte("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode\n"+
		"m2;c8y_Id;weak;c8y_lwm2m;m2;coap://h:5783;NO_SEC\n"), 0o600)

	run := func(file string) (string, error) {
		cmd := importCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"devices", file, "--url", "http://" + a.HTTPAddr.String(), "--password", "Admin-pass-1234!", "--timeout", "30s"})
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		err := cmd.ExecuteContext(cctx)
		return out.String(), err
	}
	out, err := run(good)
	if err != nil || !strings.Contains(out, "1 lines, 1 devices created, 0 updated, 0 failed") {
		t.Errorf("good file: %v\n%s", err, out)
	}
	out, err = run(bad)
	if err == nil || !strings.Contains(out, "line 2 (m2): CREDENTIALS") {
		t.Errorf("bad file: %v\n%s", err, out)
	}
}
