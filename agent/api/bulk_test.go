package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// bulkServer serves an API with the given import settings over a fresh
// embedded store.
func bulkServer(tb testing.TB, cfg api.Config) (store.Engine, *httptest.Server) {
	tb.Helper()
	s := storetest.OpenTest(tb)
	if _, err := s.EnsureManagement(ctx, adminPass); err != nil {
		tb.Fatal(err)
	}
	cfg.Store, cfg.Metrics = s, prometheus.NewRegistry()
	srv := httptest.NewServer(api.New(cfg).Handler())
	tb.Cleanup(srv.Close)
	return s, srv
}

func postBulk(tb testing.TB, srv *httptest.Server, csv string) *http.Response {
	tb.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/devicecontrol/bulkNewDeviceRequests", strings.NewReader(csv))
	req.SetBasicAuth("management/admin", adminPass)
	req.Header.Set("Content-Type", "text/csv")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func bulkFile(n, start int) string {
	var b strings.Builder
	b.WriteString("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key\n")
	for i := start; i < start+n; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "d%d;c8y_Id;Secret-pass-%d!;c8y_lwm2m;d%d;coap://h:5783;NO_SEC;;\n", i, i, i)
		} else {
			fmt.Fprintf(&b, "d%d;c8y_Id;Secret-pass-%d!;c8y_lwm2m;d%d;coaps://h:5784;PSK;d%d-id;%08x\n", i, i, i, i, i)
		}
	}
	return b.String()
}

// The credentials are hashed with the configured cost, and each line with
// its own credentials, however many lines are hashed at once.
func TestBulkCredentialsHashCost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cost    int
		workers int
		want    int
	}{
		{name: "configured cost", cost: 5, workers: 3, want: 5},
		{name: "zero takes bcrypt's default", want: bcrypt.DefaultCost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := bulkServer(t, api.Config{CredentialsHashCost: tc.cost, ImportWorkers: tc.workers})
			const n = 7
			res := postBulk(t, srv, bulkFile(n, 0))
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("HTTP %d", res.StatusCode)
			}
			for i := range n {
				x, err := s.GetExternalID(ctx, store.ManagementTenant, "c8y_Id", fmt.Sprintf("d%d", i))
				if err != nil {
					t.Fatalf("device d%d: %v", i, err)
				}
				reg, err := s.DeviceRegistrationOf(ctx, store.ManagementTenant, x.ManagedObjectID)
				if err != nil {
					t.Fatal(err)
				}
				if c, _ := bcrypt.Cost(reg.CredentialsHash); c != tc.want {
					t.Errorf("d%d hashed with cost %d, want %d", i, c, tc.want)
				}
				if bcrypt.CompareHashAndPassword(reg.CredentialsHash, fmt.Appendf(nil, "Secret-pass-%d!", i)) != nil {
					t.Errorf("d%d: the hash is not of its own credentials", i)
				}
			}
		})
	}
}

// BenchmarkBulkRegistration imports files of 50 new devices, half of them
// PSK, through the API into the embedded store, with the agent's default
// hash cost.
func BenchmarkBulkRegistration(b *testing.B) {
	_, srv := bulkServer(b, api.Config{CredentialsHashCost: 6})
	const lines = 50
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		res := postBulk(b, srv, bulkFile(lines, i*lines))
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != 201 || !strings.Contains(buf.String(), fmt.Sprintf(`"numberOfCreated":%d`, lines)) {
			b.Fatalf("HTTP %d %s", res.StatusCode, buf.String())
		}
		i++
	}
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
}
