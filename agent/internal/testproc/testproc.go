// Package testproc runs programs that tests need beside the agent (a
// decoder service), on loopback, stopped when the test ends.
package testproc

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

// FreeTCPAddr is a loopback address whose port was free a moment ago,
// for a service the test starts later (or never: nobody answers there).
func FreeTCPAddr(t testing.TB) string {
	t.Helper()
	return freeAddr(t, func(a string) (io.Closer, error) { return net.Listen("tcp", a) })
}

// FreeUDPAddr is a loopback UDP address whose port was free a moment ago,
// for a socket the test binds later.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	return freeAddr(t, func(a string) (io.Closer, error) { return net.ListenPacket("udp", a) })
}

// freeAddr picks a free port below Linux's ephemeral range (32768 and
// up): a port the kernel handed out and took back would soon be handed
// to another process's socket, which then holds it when the test binds
// it; below the range only an explicit bind takes a port.
func freeAddr(t testing.TB, listen func(string) (io.Closer, error)) string {
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		c, err := listen(addr)
		if err == nil {
			_ = c.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// ServeAt runs bin with args until the test ends (SIGTERM, then a kill
// after 5 s) and returns its process once something accepts connections
// at addr.
func ServeAt(t testing.TB, addr, bin string, args ...string) *os.Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	apitest.Eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return cmd.Process
}

// Stop stops the process pid with SIGSTOP and returns once every thread
// of it is stopped: the signal is delivered a moment after kill returns,
// and a call could still be answered in between.
func Stop(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testbound.Until(t, 10*time.Second, fmt.Sprintf("process %d stopped", pid), func() bool {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		for _, f := range stats {
			b, err := os.ReadFile(f)
			// the state follows the command name in parentheses
			_, after, _ := strings.Cut(string(b), ") ")
			if err != nil || !strings.HasPrefix(after, "T") {
				return false
			}
		}
		return len(stats) > 0
	})
}
