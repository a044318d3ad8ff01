package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "register devices in bulk from a CSV file, through the API",
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
	f := devices.Flags()
	f.StringVar(&base, "url", envOr("LWM2M_AGENT_URL", "http://127.0.0.1:8080"), "API address (LWM2M_AGENT_URL)")
	f.StringVar(&user, "user", envOr("LWM2M_AGENT_USER", "management/admin"), "tenant/user (LWM2M_AGENT_USER)")
	f.StringVar(&password, "password", "", "password (LWM2M_AGENT_PASSWORD)")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "how long the import may take")
	cmd.AddCommand(devices)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/devicecontrol/bulkNewDeviceRequests", bytes.NewReader(csv))
	if err != nil {
		return res, err
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return res, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Message string }
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return res, fmt.Errorf("%s: %s", resp.Status, e.Message)
		}
		return res, fmt.Errorf("%s", resp.Status)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return res, fmt.Errorf("decode answer: %w", err)
	}
	return res, nil
}
