package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "register devices from a CSV file, or device protocols from DDF files, through the API",
	}
	var (
		base, user, password string
		timeout              time.Duration
	)
	devices := &cobra.Command{
		Use:   "devices FILE.csv",
		Short: "register or update the devices of a bulk registration CSV file",
		Long: "Sends the file to POST /devicecontrol/bulkNewDeviceRequests and prints the\n" +
			"result: how many devices were created or updated, and each failed line with\n" +
			"its reason. Exits with status 1 when any line failed.\n" +
			"The password comes from --password or LWM2M_AGENT_PASSWORD.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if password == "" {
				password = os.Getenv("LWM2M_AGENT_PASSWORD")
			}
			c := &apiClient{base: strings.TrimRight(base, "/"), user: user, password: password, http: &http.Client{Timeout: timeout}}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := c.bulk(ctx, data)
			if err != nil {
				return fmt.Errorf("import %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d lines, %d devices created, %d updated, %d failed\n",
				args[0], res.All, res.Created, res.Successful-res.Created, res.Failed)
			for _, f := range res.Failures {
				fmt.Fprintf(out, "line %d (%s): %s\n", f.Line, f.DeviceID, f.Reason)
			}
			if res.Failed > 0 {
				return fmt.Errorf("%d of %d lines failed", res.Failed, res.All)
			}
			return nil
		},
	}
	apiFlags(devices, &base, &user, &password)
	devices.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long the import may take")
	cmd.AddCommand(devices, protocolsCmd())
	return cmd
}

type bulkResult struct {
	All        int `json:"numberOfAll"`
	Created    int `json:"numberOfCreated"`
	Failed     int `json:"numberOfFailed"`
	Successful int `json:"numberOfSuccessful"`
	Failures   []struct {
		DeviceID string `json:"deviceId"`
		Line     int    `json:"line"`
		Reason   string `json:"failureReason"`
	} `json:"failedCreationList"`
}

func (c *apiClient) bulk(ctx context.Context, csv []byte) (bulkResult, error) {
	var res bulkResult
	err := c.send(ctx, http.MethodPost, "/devicecontrol/bulkNewDeviceRequests", "text/csv", bytes.NewReader(csv), &res)
	return res, err
}
