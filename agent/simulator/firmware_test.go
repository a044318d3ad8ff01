package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// firmwareFiles serves packages: /ok/<name> 2 KiB, /missing 404,
// /broken 500, /empty nothing, /big more than the tests' MaxSize.
func firmwareFiles(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("f", 2048)))
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "disk on fire", http.StatusInternalServerError)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 64<<10))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestFirmwareUpdatePull(t *testing.T) {
	files := firmwareFiles(t)
	srv := startServer(t)
	sim := runSim(t, srv, nil)
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	value := func(p string) node.Value { v, _ := dev.Value(node.MustParsePath(p)); return v }

	states, cancel := observe(t, reg, "/5/0/3", codec.Text)
	defer cancel()
	uri := files.URL + "/ok/sensor_2.1.0.bin"
	if r := srv.must(reg, put("/5/0/1", int(codec.Text), []byte(uri))); r.code != codes.Changed {
		t.Fatalf("write package URI: %v %s", r.code, r.payload)
	}
	// the first answer, then Downloading and Downloaded
	got := states.waitFor(t, 3, 5*time.Second)
	var seen []string
	for _, r := range got {
		seen = append(seen, string(r.payload))
	}
	if strings.Join(seen[len(seen)-2:], ",") != "1,2" {
		t.Errorf("state notifications %v, want Downloading (1) then Downloaded (2) last", seen)
	}
	if v := value("/5/0/6"); v.Str != "sensor" {
		t.Errorf("package name %q, want sensor", v.Str)
	}
	if v := value("/5/0/7"); v.Str != "2.1.0" {
		t.Errorf("package version %q, want 2.1.0", v.Str)
	}
	if r := srv.must(reg, post("/5/0/2", -1, nil)); r.code != codes.Changed {
		t.Fatalf("execute update: %v %s", r.code, r.payload)
	}
	if v := value("/5/0/3"); v.Int != fwUpdating {
		t.Errorf("state after Update %d, want Updating (3)", v.Int)
	}
	// the device reboots into the new firmware and registers again
	srv.wait(10*time.Second, "registration after the update", func() bool {
		return srv.countLocked("register sim-0") == 2
	})
	if v := value("/3/0/3"); v.Str != "2.1.0" {
		t.Errorf("firmware version after the update %q, want 2.1.0", v.Str)
	}
	if s, r := value("/5/0/3"), value("/5/0/5"); s.Int != fwIdle || r.Int != fwResultSuccess {
		t.Errorf("after the update state %d result %d, want 0 and 1", s.Int, r.Int)
	}
}

func TestFirmwareDownloadFailures(t *testing.T) {
	files := firmwareFiles(t)
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Firmware.MaxSize = 32 << 10 })
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	value := func(p string) int64 { v, _ := dev.Value(node.MustParsePath(p)); return v.Int }
	for _, tc := range []struct {
		name, uri string
		result    int64
	}{
		{"not found", files.URL + "/missing.bin", fwResultInvalidURI},
		{"server error", files.URL + "/broken", fwResultConnLost},
		{"connection refused", "http://127.0.0.1:1/fw.bin", fwResultConnLost},
		{"empty package", files.URL + "/empty", fwResultIntegrity},
		{"too big", files.URL + "/big", fwResultNoFlash},
		{"unsupported protocol", "ftp://127.0.0.1/fw.bin", fwResultUnsupported},
		{"not a URI", "no uri", fwResultInvalidURI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := srv.must(reg, put("/5/0/1", int(codec.Text), []byte(tc.uri))); r.code != codes.Changed {
				t.Fatalf("write package URI: %v %s", r.code, r.payload)
			}
			srv.wait(5*time.Second, "download end", func() bool { return value("/5/0/3") == fwIdle })
			if got := value("/5/0/5"); got != tc.result {
				t.Errorf("update result %d, want %d", got, tc.result)
			}
			if r := srv.must(reg, post("/5/0/2", -1, nil)); r.code != codes.MethodNotAllowed {
				t.Errorf("Update after a failed download: %v, want 4.05", r.code)
			}
		})
	}
	// an empty URI resets the result
	if r := srv.must(reg, put("/5/0/1", int(codec.Text), []byte(""))); r.code != codes.Changed {
		t.Fatalf("reset: %v", r.code)
	}
	if s, r := value("/5/0/3"), value("/5/0/5"); s != fwIdle || r != fwResultInitial {
		t.Errorf("after reset state %d result %d, want 0 0", s, r)
	}
}

func TestPackageOf(t *testing.T) {
	for _, tc := range []struct {
		name, uri, current, fixed string
		wantName, wantVersion     string
	}{
		{"name and version", "https://h/fw/sensor_2.1.0.bin", "1.0.0", "", "sensor", "2.1.0"},
		{"no extension", "http://h/sensor_2.1.0", "1.0.0", "", "sensor", "2.1.0"},
		{"no version", "http://h/fw-2.bin", "1.0.0", "", "fw-2", "1.0.1"},
		{"fixed version", "http://h/sensor_2.1.0.bin", "1.0.0", "9.9", "sensor", "9.9"},
		{"no file", "http://h/", "7", "", "firmware", "8"},
		{"word version", "http://h/x.bin", "beta", "", "x", "beta.1"},
		{"the agent's token", "coap://h:5683/fw/7_be3MpuB7mDd-ljpGgnGg", "1.0.0", "", "7_be3MpuB7mDd-ljpGgnGg", "1.0.1"},
		{"a token ending in digits", "coap://h/fw/Abc_12", "1.0.0", "", "Abc_12", "1.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, v := packageOf(tc.uri, tc.current, tc.fixed)
			if n != tc.wantName || v != tc.wantVersion {
				t.Errorf("packageOf(%q) = %q %q, want %q %q", tc.uri, n, v, tc.wantName, tc.wantVersion)
			}
		})
	}
}
