package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// With the embedded store logging everything at debug level, no PSK key,
// credentials hash or password hash reaches the log in any encoding,
// while the store's other records still do.
func TestVerboseStoreLogHoldsNoSecrets(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: log, VerboseEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	key := []byte{0x5e, 0xc2, 0xe7, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc}
	bsKey := []byte{0xfe, 0xed, 0xfa, 0xce, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c}
	cred := []byte("$2a$06$credentials-hash-that-must-not-leak")
	if _, err := s.EnsureManagement(ctx, "Very-secret-admin-1!"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "Very-secret-admin-1!"); err != nil {
		t.Fatal(err)
	}
	reg := store.DeviceRegistration{Params: map[string]any{"endpointId": "ep-1", "securityMode": "PSK"}, PSKKey: key, BootstrapPSKKey: bsKey, CredentialsHash: cred}
	if err := s.SaveDeviceRegistration(ctx, "acme", "10", reg); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeviceRegistrationOf(ctx, "acme", "10")
	if err != nil || !bytes.Equal(got.PSKKey, key) {
		t.Fatalf("read back: %v %x", err, got.PSKKey)
	}
	text := logs.String()
	for _, secret := range [][]byte{key, bsKey, cred} {
		for _, enc := range []string{
			hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
			base64.StdEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret),
			base64.URLEncoding.EncodeToString(secret), string(secret[4:]),
		} {
			if strings.Contains(text, enc) {
				t.Errorf("the store's log holds a secret as %q", enc)
			}
		}
	}
	for _, field := range []string{"pskKey", "bootstrapPskKey", "credentialsHash", "passwordHash"} {
		if strings.Contains(text, field) {
			t.Errorf("the store's log shows a record with %s", field)
		}
	}
	if !strings.Contains(text, "store log record omitted") {
		t.Error("no record was omitted: the test did not see the store's verbose log")
	}
	if !strings.Contains(text, "component=ferretdb") || strings.Count(text, "\n") < 20 {
		t.Errorf("the store's verbose log is gone altogether (%d lines)", strings.Count(text, "\n"))
	}
}
