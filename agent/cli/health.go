package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// healthCmd asks a running agent's GET /health, for container health
// checks: the agent's image has no shell and no HTTP client of its own.
func healthCmd() *cobra.Command {
	var (
		base    string
		timeout time.Duration
		ready   bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "check that an agent answers GET /health with status UP (exit status 0), for container health checks",
		Long: "Asks GET /health of the agent at --url (GET /health/ready with --ready: the\n" +
			"store answers, the listeners are up and the agent is not stopping). Without\n" +
			"--url, the agent is the one this environment configures: LWM2M_AGENT_HTTP_ADDR\n" +
			"(default :8080), reached on loopback when its host is empty or a wildcard.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if base == "" {
				base = localURL(envOr(config.EnvName("http-addr"), config.Default().HTTPAddr))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			path := "/health"
			if ready {
				path = "/health/ready"
			}
			status, err := health(ctx, base, path)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), status)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "the agent's HTTP address (default from LWM2M_AGENT_HTTP_ADDR)")
	cmd.Flags().BoolVar(&ready, "ready", false, "ask whether the agent is ready for traffic, not only alive")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// localURL turns a listen address into a URL that reaches it from the
// same machine.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func health(ctx context.Context, base, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("health %s%s: %w", base, path, err)
	}
	defer resp.Body.Close()
	var h struct{ Status string }
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := json.Unmarshal(data, &h); err != nil || resp.StatusCode != http.StatusOK || h.Status != "UP" {
		return "", fmt.Errorf("health %s%s: HTTP %d %q", base, path, resp.StatusCode, data)
	}
	return h.Status, nil
}
