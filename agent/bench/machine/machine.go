// Package machine tells the load runs what they run on, builds and
// starts the agents they measure on free loopback ports, and reads what
// those use.
package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU returns the processor's model name and the number of cores.
func CPU() (model string, cores int) {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model = "unknown cpu"
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
			break
		}
	}
	return model, strings.Count(string(b), "processor\t:")
}

// FreePort returns a loopback address with a port free now for network
// "udp" or "tcp".
func FreePort(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// CPUSeconds is the user and system CPU time of process pid so far, 0
// when it cannot be read.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// the fields after the command name, which is in parentheses
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// DirSize is the bytes of the files under dir, 0 when dir does not
// exist (a MongoDB store keeps nothing in the data directory).
func DirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// Build builds the agent's binary at bin from the module's source
// (./agent/cmd/lwm2m-agent, run from the repository's root, as `make
// build` does), so that a load run measures the code beside it. Go's
// build cache makes it quick when nothing changed.
func Build(ctx context.Context, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./agent/cmd/lwm2m-agent")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s (run from the repository's root, or pass -build=false with -bin): %w", bin, err)
	}
	return nil
}
