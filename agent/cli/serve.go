package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/app"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/spf13/cobra"
)

func serveCmd() *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the LwM2M server, the REST API and the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.LoadEnv(nil, cmd.Flags()); err != nil {
				return err
			}
			exposed := cfg.ApplyDev(func(name string) bool {
				_, env := os.LookupEnv(config.EnvName(name))
				return cmd.Flags().Changed(name) || env
			})
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			// The signal ends cmd.Context(); the agent's own context ends
			// only after it has drained (stopOnSignal).
			ctx, stop := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer stop()
			started := make(chan *app.Agent, 1)
			go stopOnSignal(cmd.Context(), ctx, stop, started, cfg.ShutdownDelay, log)
			a, wait, err := app.Start(ctx, cfg, log)
			if err != nil {
				return err
			}
			started <- a
			if a.AdminPassword != "" {
				// printed once, on the store's first start, and never logged
				fmt.Fprintf(os.Stderr, "\nmanagement tenant created: user management/admin, password %s\n(set LWM2M_AGENT_ADMIN_PASSWORD to choose it; it is shown only this once)\n\n", a.AdminPassword)
			}
			if cfg.Dev {
				devBanner(os.Stderr, log, cfg, exposed)
			}
			log.Info("agent started", "version", versionString(), "store", storeName(cfg), "auto_register", cfg.AutoRegister)
			err = wait()
			log.Info("agent stopped", "err", err)
			return err
		},
	}
	cfg.Bind(cmd.Flags())
	return cmd
}

// stopOnSignal stops the agent once signalled ends: at once while it is
// still starting, else after it has been draining (not ready, still
// serving) for delay, so that load balancers and Kubernetes' endpoints
// stop sending it devices and requests before its sockets close. It
// returns when the agent's context ends.
func stopOnSignal(signalled, agent context.Context, stop context.CancelFunc, started <-chan *app.Agent, delay time.Duration, log *slog.Logger) {
	defer stop()
	select {
	case <-signalled.Done():
	case <-agent.Done():
		return
	}
	select {
	case a := <-started:
		a.Drain()
	default:
		return
	}
	if delay <= 0 {
		return
	}
	log.Info("stopping after the shutdown delay", "delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-agent.Done():
	}
}

func storeName(cfg config.Config) string {
	if cfg.MongoURI != "" {
		return "mongodb"
	}
	return "embedded (" + cfg.DataDir + ")"
}

// devBanner says what the development setup allows, and to whom.
func devBanner(w io.Writer, log *slog.Logger, cfg config.Config, exposed []string) {
	reach := "every port listens on loopback (127.0.0.1) only: devices and clients on other machines cannot reach this agent"
	if len(exposed) > 0 {
		reach = "WARNING: " + strings.Join(exposed, ", ") + " listen beyond loopback, so other machines reach an agent with a known password and auto-registration"
		log.Warn("development setup reachable from other machines", "addresses", strings.Join(exposed, ", "))
	}
	pass := "from LWM2M_AGENT_ADMIN_PASSWORD"
	if cfg.AdminPassword == config.DevAdminPassword {
		pass = config.DevAdminPassword
	}
	console := ""
	if host, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && port != "0" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		console = "Web console: http://" + net.JoinHostPort(host, port) + "/ (log in as tenant management, user admin).\n"
	}
	fmt.Fprintf(w, "\ndevelopment setup (--dev): %s.\nAPI user management/admin, password %s; auto-registration %s.\n%sFor production run `lwm2m-agent serve` without --dev (README, Deployment).\n\n",
		reach, pass, map[bool]string{true: "on", false: "off"}[cfg.AutoRegister], console)
	log.Info("development setup", "loopback_only", len(exposed) == 0, "auto_register", cfg.AutoRegister)
}
