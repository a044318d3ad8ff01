// Command importbench measures bulk registration end to end: it starts
// bin/lwm2m-agent with a fresh embedded store on loopback, generates a
// registration file of NO_SEC and PSK devices, posts it to
// POST /devicecontrol/bulkNewDeviceRequests as one request, and prints the
// lines per second and the total time, from the first byte sent to the
// answer (parse, hashing of the credentials, every store write).
package main

import (
	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"

	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"
)

const password = "Import-bench-pass-1!"

func main() {
	var (
		count    = flag.Int("count", 100_000, "device lines in the file")
		pskEach  = flag.Int("psk-every", 2, "every n-th line is a PSK device (0: none)")
		cost     = flag.Int("hash-cost", 0, "LWM2M_AGENT_CREDENTIALS_HASH_COST for the agent (0: the agent's default)")
		profile  = flag.String("cpuprofile", "", "write a CPU profile of the agent during the import here")
		profSecs = flag.Int("profile-seconds", 30, "length of the CPU profile")
		keep     = flag.Bool("keep", false, "keep the agent's data directory and log")
		bin      = machine.BinaryFlags()
	)
	flag.Parse()
	if *count < 1 || *count > 100_000 {
		fail(fmt.Errorf("-count %d: a file holds 1 to 100,000 lines", *count))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	cores, err := bin.Prepare(ctx, "agent with embedded store and this client on one machine, loopback")
	if err != nil {
		fail(err)
	}
	ag, err := startAgent(ctx, bin.Path, *cost)
	if err != nil {
		fail(err)
	}
	defer ag.stop(*keep)

	file, psk := generate(*count, *pskEach)
	fmt.Printf("file: %d lines (%d NO_SEC, %d PSK), %.1f MiB\n", *count, *count-psk, psk, float64(len(file))/(1<<20))

	if *profile != "" {
		go ag.cpuProfile(*profile, time.Duration(*profSecs)*time.Second)
	}
	cpu0 := machine.CPUSeconds(ag.cmd.Process.Pid)
	start := time.Now()
	res, err := ag.bulk(ctx, file)
	took := time.Since(start)
	cpu := machine.CPUSeconds(ag.cmd.Process.Pid) - cpu0
	if err != nil {
		fail(err)
	}
	if res.Created != *count || res.Failed != 0 {
		fail(fmt.Errorf("%d of %d created, %d failed: %v", res.Created, *count, res.Failed, res.Failures))
	}
	fmt.Printf("import: %d devices created in %.1fs: %.0f lines/s (one request, hashing and every store write included)\n",
		res.Created, took.Seconds(), float64(res.Created)/took.Seconds())
	// The machine may be shared: the agent's own CPU time per line is the
	// figure that does not depend on what else runs.
	fmt.Printf("agent CPU: %.1fs, %.2f ms per line; on %d idle cores at most %.0f lines/s\n",
		cpu, 1000*cpu/float64(res.Created), cores, float64(res.Created)*float64(cores)/cpu)
}

func fail(err error) { machine.Fail("importbench", err) }

// generate writes a registration file; every pskEach-th line is a PSK
// device with a server and a bootstrap identity.
func generate(n, pskEach int) ([]byte, int) {
	var b bytes.Buffer
	b.Grow(n * 220)
	b.WriteString("ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;bootstrap psk_id;bootstrap psk_key;registrationLifetime;awakeTimeRegistrationParameter\n")
	psk := 0
	for i := range n {
		ep := fmt.Sprintf("bench-%06d", i)
		if pskEach > 0 && i%pskEach == pskEach-1 {
			psk++
			fmt.Fprintf(&b, "%s;c8y_Id;Bench-pass-%06d!;Meter %d;c8y_lwm2m;1;%s;coaps://127.0.0.1:5784;PSK;%s-id;%032x;%s-bs;%032x;300;0\n",
				ep, i, i, ep, ep, i, ep, i+1)
			continue
		}
		fmt.Fprintf(&b, "%s;c8y_Id;Bench-pass-%06d!;Meter %d;c8y_lwm2m;1;%s;coap://127.0.0.1:5783;NO_SEC;;;;;300;0\n", ep, i, i, ep)
	}
	return b.Bytes(), psk
}

type agent struct {
	cmd   *exec.Cmd
	dir   string
	http  string
	pprof string
}

func startAgent(ctx context.Context, bin string, cost int) (*agent, error) {
	dir, err := os.MkdirTemp("", "importbench-")
	if err != nil {
		return nil, err
	}
	var env []string
	if cost > 0 {
		env = append(env, "LWM2M_AGENT_CREDENTIALS_HASH_COST="+strconv.Itoa(cost))
	}
	m, err := machine.StartAgent(ctx, bin, dir, password, env...)
	if err != nil {
		return nil, err
	}
	return &agent{cmd: m.Cmd, dir: dir, http: m.HTTP, pprof: m.Pprof}, nil
}

func (a *agent) stop(keep bool) {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	machine.StopProcess(a.cmd, 20*time.Second)
	a.cmd = nil
	if keep {
		fmt.Println("agent data and log kept in", a.dir)
		return
	}
	_ = os.RemoveAll(a.dir)
}

func (a *agent) cpuProfile(path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", a.pprof, int(d.Seconds())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "importbench: profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "importbench: profile:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

type bulkResult struct {
	All      int `json:"numberOfAll"`
	Created  int `json:"numberOfCreated"`
	Failed   int `json:"numberOfFailed"`
	Failures []struct {
		Line   int    `json:"line"`
		Reason string `json:"failureReason"`
	} `json:"failedCreationList"`
}

func (a *agent) bulk(ctx context.Context, file []byte) (bulkResult, error) {
	var res bulkResult
	req, err := http.NewRequestWithContext(ctx, "POST", a.http+"/devicecontrol/bulkNewDeviceRequests", bytes.NewReader(file))
	if err != nil {
		return res, err
	}
	req.SetBasicAuth("management/admin", password)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return res, fmt.Errorf("bulk registration: %s: %s", resp.Status, data)
	}
	return res, json.Unmarshal(data, &res)
}
