package cli

import (
	"fmt"
	"os"

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
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			ctx := cmd.Context()
			a, wait, err := app.Start(ctx, cfg, log)
			if err != nil {
				return err
			}
			if a.AdminPassword != "" {
				// printed once, on the store's first start, and never logged
				fmt.Fprintf(os.Stderr, "\nmanagement tenant created: user management/admin, password %s\n(set LWM2M_AGENT_ADMIN_PASSWORD to choose it; it is shown only this once)\n\n", a.AdminPassword)
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

func storeName(cfg config.Config) string {
	if cfg.MongoURI != "" {
		return "mongodb"
	}
	return "embedded (" + cfg.DataDir + ")"
}
