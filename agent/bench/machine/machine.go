// Package machine tells the load runs what they run on, and finds free
// loopback ports for the agents they start.
package machine

import (
	"net"
	"os"
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
