package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func shellCmd() *cobra.Command {
	var (
		base, user, password string
		timeout              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "shell DEVICE COMMAND",
		Short: "run a shell command on a device through the API and print the result",
		Long: "DEVICE is a managed object id or an endpoint name (its c8y_Id external ID).\n" +
			"COMMAND is a line of the shell grammar, e.g. 'read /3/0'.\n" +
			"The password comes from --password or LWM2M_AGENT_PASSWORD.",
		Example: "  lwm2m-agent shell sim-0 'read /3/0'",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if password == "" {
				password = os.Getenv("LWM2M_AGENT_PASSWORD")
			}
			c := &apiClient{base: strings.TrimRight(base, "/"), user: user, password: password, http: &http.Client{Timeout: 30 * time.Second}}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := c.runShell(ctx, args[0], args[1], cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res)
			return nil
		},
	}
	apiFlags(cmd, &base, &user, &password)
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the operation to end")
	return cmd
}

// apiFlags binds the flags of the commands that work through the API.
func apiFlags(cmd *cobra.Command, base, user, password *string) {
	f := cmd.Flags()
	f.StringVar(base, "url", envOr("LWM2M_AGENT_URL", "http://127.0.0.1:8080"), "API address (LWM2M_AGENT_URL)")
	f.StringVar(user, "user", envOr("LWM2M_AGENT_USER", "management/admin"), "tenant/user (LWM2M_AGENT_USER)")
	f.StringVar(password, "password", "", "password (LWM2M_AGENT_PASSWORD)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type apiClient struct {
	base, user, password string
	http                 *http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ctype := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(b), "application/json"
	}
	return c.send(ctx, method, path, ctype, rd, out)
}

// send makes one API request with a body of the given content type and
// decodes the JSON answer into out; an error answer becomes an error with
// the API's message.
func (c *apiClient) send(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s %s: %s: %w", method, path, resp.Status, &unauthorizedError{hint: c.unauthorizedHint()})
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Message string }
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// unauthorizedError is the API's 401, with the hint of where the
// credentials came from.
type unauthorizedError struct{ hint string }

func (e *unauthorizedError) Error() string { return e.hint }

// unauthorizedHint says where the credentials the API refused came from.
func (c *apiClient) unauthorizedHint() string {
	if c.password == "" {
		return fmt.Sprintf("no password given for %s: set LWM2M_AGENT_PASSWORD (or --password); the user is LWM2M_AGENT_USER (or --user)", c.user)
	}
	return fmt.Sprintf("the API refused user %s with the password given: check LWM2M_AGENT_PASSWORD (or --password) and LWM2M_AGENT_USER (or --user, tenant/user)", c.user)
}

type operation struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	FailureReason string `json:"failureReason"`
	Command       struct {
		Text   string `json:"text"`
		Result string `json:"result"`
	} `json:"c8y_Command"`
}

func (c *apiClient) deviceID(ctx context.Context, device string) (string, error) {
	var mo struct{ ID string }
	err := c.do(ctx, http.MethodGet, "/inventory/managedObjects/"+url.PathEscape(device), nil, &mo)
	if err == nil {
		return mo.ID, nil
	}
	if _, ok := errors.AsType[*unauthorizedError](err); ok {
		return "", err
	}
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	if err2 := c.do(ctx, http.MethodGet, "/identity/externalIds/c8y_Id/"+url.PathEscape(device), nil, &ext); err2 != nil {
		return "", fmt.Errorf("device %q: neither a managed object id (%v) nor an endpoint (%v)", device, err, err2)
	}
	return ext.ManagedObject.ID, nil
}

func (c *apiClient) runShell(ctx context.Context, device, text string, note io.Writer) (string, error) {
	id, err := c.deviceID(ctx, device)
	if err != nil {
		return "", err
	}
	var op operation
	body := map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}
	if err := c.do(ctx, http.MethodPost, "/devicecontrol/operations", body, &op); err != nil {
		return "", err
	}
	// Why an operation may wait: said once, at once, so that nobody
	// stares at a silent terminal for a device that sleeps.
	why := ""
	if op.Status == "PENDING" {
		why = c.whyPending(ctx, id, time.Now())
		if why != "" {
			fmt.Fprintf(note, "operation %s is PENDING: device %s %s; waiting (Ctrl-C stops waiting, not the operation)\n", op.ID, device, why)
		}
	}
	for {
		switch op.Status {
		case "SUCCESSFUL":
			return op.Command.Result, nil
		case "FAILED":
			return "", errors.New("operation " + op.ID + " failed: " + op.FailureReason)
		}
		select {
		case <-ctx.Done():
			return "", c.stillWaiting(op, device, why)
		case <-time.After(200 * time.Millisecond):
		}
		if err := c.do(ctx, http.MethodGet, "/devicecontrol/operations/"+op.ID, nil, &op); err != nil {
			if ctx.Err() != nil {
				return "", c.stillWaiting(op, device, why)
			}
			return "", err
		}
	}
}

// stillWaiting says what becomes of an operation the command stopped
// waiting for: it stays in the queue and is sent when the device listens.
func (c *apiClient) stillWaiting(op operation, device, why string) error {
	if op.Status == "EXECUTING" {
		return fmt.Errorf("operation %s is still EXECUTING: sent to device %s, no answer yet; its outcome will be at %s/devicecontrol/operations/%s",
			op.ID, device, c.base, op.ID)
	}
	if why == "" {
		why = "has not taken it (asleep, offline or busy with earlier operations)"
	}
	return fmt.Errorf("operation %s stays PENDING: device %s %s; it is sent at the device's next Register or Update (%s/devicecontrol/operations/%s)",
		op.ID, device, why, c.base, op.ID)
}

// whyPending tells from the device's managed object why an operation
// waits: the device is not registered, or its awake window has passed.
// Empty when the device looks reachable or cannot be read.
func (c *apiClient) whyPending(ctx context.Context, id string, now time.Time) string {
	var mo struct {
		AwakeTime  *int64 `json:"awakeTimeRegistrationParameter"`
		Connection struct {
			Status string `json:"status"`
		} `json:"c8y_Connection"`
		LwM2M *struct {
			RegistrationID string    `json:"registrationId"`
			LastUpdate     time.Time `json:"lastUpdate"`
			AwakeTimeMs    int64     `json:"awakeTimeMs"`
		} `json:"lwm2m"`
	}
	if err := c.do(ctx, http.MethodGet, "/inventory/managedObjects/"+url.PathEscape(id), nil, &mo); err != nil {
		return ""
	}
	return pendingReason(mo.Connection.Status, mo.LwM2M != nil && mo.LwM2M.RegistrationID != "", func() (time.Time, time.Duration) {
		awake := time.Duration(mo.LwM2M.AwakeTimeMs) * time.Millisecond
		if mo.AwakeTime != nil {
			awake = time.Duration(*mo.AwakeTime) * time.Millisecond
		}
		return mo.LwM2M.LastUpdate, awake
	}, now)
}

// pendingReason is whyPending's decision: window gives the last Register
// or Update and the device's awake time (0: always listening).
func pendingReason(connection string, registered bool, window func() (time.Time, time.Duration), now time.Time) string {
	if !registered || connection == "DISCONNECTED" {
		return "is not registered (offline)"
	}
	last, awake := window()
	if awake > 0 && !last.IsZero() && now.After(last.Add(awake)) {
		return fmt.Sprintf("is asleep (it listens %v after each Register or Update; the last was at %s)", awake, last.UTC().Format(time.RFC3339))
	}
	return ""
}
