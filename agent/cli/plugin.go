package cli

import (
	"github.com/spf13/cobra"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/bundled"
)

// pluginCmd serves a bundled plugin: the agent re-executes itself with
// `plugin mapping` or `plugin customactions` and talks to the child over
// go-plugin. Hidden: only the agent starts it.
func pluginCmd() *cobra.Command {
	return &cobra.Command{
		Use:       "plugin NAME",
		Short:     "serve a bundled plugin (mapping or customactions) to the agent that started this process",
		Hidden:    true,
		Args:      cobra.ExactArgs(1),
		ValidArgs: bundled.Names,
		RunE: func(_ *cobra.Command, args []string) error {
			return bundled.Serve(args[0])
		},
	}
}
