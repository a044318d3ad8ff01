package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// csvHeader is the registration file of the secure runs.
const csvHeader = "ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key,bootstrap psk_id,bootstrap psk_key,registrationLifetime\n"

// deviceFile writes n lines of devices named prefix-i from first; every
// psk-th is a PSK device (psk 1: all), the others NO_SEC.
func (a *agent) deviceFile(prefix string, first, n, psk int) []byte {
	var b bytes.Buffer
	b.WriteString(csvHeader)
	for i := first; i < first+n; i++ {
		ep := fmt.Sprintf("%s-%d", prefix, i)
		if psk > 0 && i%psk == 0 {
			fmt.Fprintf(&b, "%s,c8y_Id,Secret-pass-1234!,%s,c8y_lwm2m,0,%s,coaps://%s,PSK,%s-id,%032x,%s-bs,%032x,3600\n",
				ep, ep, ep, a.coaps, ep, i+1, ep, i+2)
		} else {
			fmt.Fprintf(&b, "%s,c8y_Id,Secret-pass-1234!,%s,c8y_lwm2m,0,%s,coap://%s,NO_SEC,,,,,3600\n", ep, ep, ep, a.coap)
		}
	}
	return b.Bytes()
}

// importFile posts a registration file and checks every line was taken.
func (a *agent) importFile(file []byte, lines int) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequest("POST", a.http+"/devicecontrol/bulkNewDeviceRequests", bytes.NewReader(file))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth("management/admin", password)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var res struct {
		Successful int `json:"numberOfSuccessful"`
	}
	if err := json.Unmarshal(data, &res); err != nil || res.Successful != lines {
		return 0, fmt.Errorf("import: %s: %s", resp.Status, data)
	}
	return time.Since(start), nil
}

// simulateFile runs `simulate --csv` over a file, with extra flags.
func (a *agent) simulateFile(ctx context.Context, bin string, file []byte, name string, args ...string) error {
	path := filepath.Join(a.dir, name)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		return err
	}
	return a.simulate(ctx, bin, append([]string{"--csv", path, "--notify-interval", "0"}, args...)...)
}

// dtlsRegistrations registers PSK devices over DTLS, each with a full
// handshake, and measures the rate and the memory per idle DTLS device.
func dtlsRegistrations(ctx context.Context, a *agent, bin string, counts []int) error {
	started := 0
	var rss []int64
	for k, target := range counts {
		n := target - started
		file := a.deviceFile("dtls", started, n, 1)
		took, err := a.importFile(file, n)
		if err != nil {
			return err
		}
		fmt.Printf("dtls: imported %d PSK devices in %.1fs\n", n, took.Seconds())
		t0 := time.Now()
		if err := a.simulateFile(ctx, bin, file, fmt.Sprintf("dtls-%d.csv", k), "--bind", fmt.Sprintf("127.0.3.%d", k+1)); err != nil {
			return err
		}
		if _, err := a.waitRegistered(ctx, target, 10*time.Minute); err != nil {
			return err
		}
		took = time.Since(t0)
		fmt.Printf("dtls registrations: %d PSK devices, each a full DTLS-PSK handshake and a Register, stored in %.1fs: %.0f registrations/s\n",
			n, took.Seconds(), float64(n)/took.Seconds())
		started = target
		kb, err := a.settledRSS()
		if err != nil {
			return err
		}
		rss = append(rss, kb)
		sessions, _ := a.metric("lwm2m_agent_dtls_sessions")
		fmt.Printf("dtls memory: agent resident set %d MiB with %d idle registered devices and %.0f DTLS sessions open\n", kb/1024, target, sessions)
	}
	if len(rss) >= 2 {
		fmt.Printf("dtls memory: %.1f KiB resident per idle device with its DTLS session (slope between %d and %d devices)\n",
			float64(rss[len(rss)-1]-rss[0])/float64(counts[len(counts)-1]-counts[0]), counts[0], counts[len(counts)-1])
	}
	return nil
}

// bootstrapFlows imports n devices, half PSK, and lets each bootstrap
// (PSK devices over DTLS with their bootstrap key) and then register with
// the account it was given: the whole first contact of a new device.
func bootstrapFlows(ctx context.Context, a *agent, bin string, n int) error {
	file := a.deviceFile("bs", 0, n, 2)
	if _, err := a.importFile(file, n); err != nil {
		return err
	}
	t0 := time.Now()
	if err := a.simulateFile(ctx, bin, file, "bootstrap.csv", "--bind", "127.0.4.1",
		"--bootstrap", "coap://"+a.bs, "--bootstrap-secure", "coaps://"+a.bss); err != nil {
		return err
	}
	if _, err := a.waitRegistered(ctx, n, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(t0)
	finished, _ := a.metric("lwm2m_agent_bootstrap_finished_total")
	failed, _ := a.metric("lwm2m_agent_bootstrap_failed_total")
	fmt.Printf("bootstrap then register: %d devices (%d NO_SEC, %d PSK over DTLS on both servers) in %.1fs: %.0f flows/s (%.0f bootstraps finished, %.0f failed)\n",
		n, n-n/2, n/2, took.Seconds(), float64(n)/took.Seconds(), finished, failed)
	if int(finished) < n {
		return fmt.Errorf("%.0f of %d bootstraps finished", finished, n)
	}
	return nil
}
