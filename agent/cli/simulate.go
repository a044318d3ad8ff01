package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/spf13/cobra"
)

func simulateCmd() *cobra.Command {
	var (
		cfg      simulator.Config
		logLevel string
		every    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "run simulated LwM2M devices against a server",
		Long: "Runs many simulated LwM2M clients in one process. Each registers, keeps its\n" +
			"registration alive, answers every device-management request and sends\n" +
			"notifications of changing values (3303/0/5700 temperature, 4/0/2 signal).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = newLogger(os.Stderr, logLevel, "text")
			sim, err := simulator.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			done := make(chan error, 1)
			go func() { done <- sim.Run(ctx) }()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case err := <-done:
					return err
				case <-t.C:
					s := sim.Stats()
					fmt.Fprintf(cmd.OutOrStdout(), "registered %d/%d  %+v\n", sim.Registered(), cfg.Count, s)
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "127.0.0.1:5783", "LwM2M server address (host:port)")
	f.IntVar(&cfg.Count, "count", 1, "number of devices")
	f.StringVar(&cfg.Prefix, "prefix", "sim", "endpoint prefix; endpoints are PREFIX-N")
	f.IntVar(&cfg.Start, "start", 0, "first N")
	f.StringVar(&cfg.Version, "lwm2m-version", "1.1", "LwM2M version: 1.0 (TLV), 1.1 or 1.2 (SenML CBOR)")
	f.DurationVar(&cfg.Lifetime, "lifetime", 300*time.Second, "registration lifetime")
	f.DurationVar(&cfg.NotifyInterval, "notify-interval", time.Second, "how often observed values change; 0 never")
	f.BoolVar(&cfg.NotifyCON, "con", false, "send notifications as confirmable messages")
	f.StringVar(&cfg.Binding, "binding", "U", "binding mode (U or UQ)")
	f.Float64Var(&cfg.RegisterRate, "rate", 0, "registrations per second at start (0: as fast as the server takes them)")
	f.StringVar(&cfg.Bind, "bind", "", "local IP address of the devices' sockets (e.g. 127.0.1.1 to spread load runs)")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	f.DurationVar(&every, "stats-every", 5*time.Second, "how often to print statistics")
	return cmd
}
