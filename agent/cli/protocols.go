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
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// protocolsCmd is `import protocols FILE-or-DIR`.
func protocolsCmd() *cobra.Command {
	var (
		base, user, password string
		timeout              time.Duration
		lenient              bool
	)
	cmd := &cobra.Command{
		Use:   "protocols FILE.xml|DIR",
		Short: "create or replace device protocols from DDF XML files",
		Long: "Sends each DDF file (for a directory: every .xml file in it, by name) to\n" +
			"POST /lwm2m/deviceprotocols and prints, per file, the objects it created or\n" +
			"replaced, or why it was refused (the line and element of the problem).\n" +
			"Files are checked against LWM2M.xsd; --lenient also accepts files whose\n" +
			"elements are out of order or missing where the meaning is clear (a few\n" +
			"files of the OMA registry are). Exits with status 1 when any file failed.\n" +
			"The password comes from --password or LWM2M_AGENT_PASSWORD.",
		Args: cobra.ExactArgs(1),
		// A refused file is reported above the error; usage would bury it.
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := ddfFiles(args[0])
			if err != nil {
				return err
			}
			if password == "" {
				password = os.Getenv("LWM2M_AGENT_PASSWORD")
			}
			c := &apiClient{base: strings.TrimRight(base, "/"), user: user, password: password, http: &http.Client{Timeout: timeout}}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			failed, objects := 0, 0
			for _, f := range files {
				doc, err := os.ReadFile(f)
				if err != nil {
					fmt.Fprintf(out, "%s: %v\n", f, err)
					failed++
					continue
				}
				created, err := c.uploadDDF(ctx, doc, filepath.Base(f), lenient)
				var refused *refusedError
				switch {
				case errors.As(err, &refused):
					fmt.Fprintf(out, "%s: refused: %s\n", f, refused.msg)
					failed++
				case err != nil:
					// The agent is unreachable or broken: the other files
					// would fail the same way.
					return fmt.Errorf("import %s: %w", f, err)
				default:
					names := make([]string, len(created))
					for i, p := range created {
						names[i] = fmt.Sprintf("%d (%s)", p.ObjectID, p.Name)
					}
					fmt.Fprintf(out, "%s: %s\n", f, strings.Join(names, ", "))
					objects += len(created)
				}
			}
			fmt.Fprintf(out, "%d files: %d objects stored, %d files failed\n", len(files), objects, failed)
			if failed > 0 {
				return fmt.Errorf("%d of %d files failed", failed, len(files))
			}
			return nil
		},
	}
	apiFlags(cmd, &base, &user, &password)
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long the import may take")
	cmd.Flags().BoolVar(&lenient, "lenient", false, "accept files that do not follow LWM2M.xsd where the parser can still read them")
	return cmd
}

// ddfFiles is the file itself, or the .xml files of a directory sorted by
// name.
func ddfFiles(arg string) ([]string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{arg}, nil
	}
	entries, err := os.ReadDir(arg)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			files = append(files, filepath.Join(arg, e.Name()))
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no .xml files in %s", arg)
	}
	return files, nil
}

type createdProtocol struct {
	ObjectID int    `json:"objectId"`
	Name     string `json:"name"`
}

// refusedError is the agent's answer to a document it would not store.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// uploadDDF posts one document; a 4xx answer is a *refusedError with the
// agent's message.
func (c *apiClient) uploadDDF(ctx context.Context, doc []byte, name string, lenient bool) ([]createdProtocol, error) {
	q := url.Values{"source": {name}}
	if lenient {
		q.Set("lenient", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/lwm2m/deviceprotocols?"+q.Encode(), bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusUnauthorized {
		var e struct{ Message string }
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return nil, &refusedError{msg: e.Message}
		}
		return nil, &refusedError{msg: resp.Status}
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("POST /lwm2m/deviceprotocols: %s", resp.Status)
	}
	var res struct {
		DeviceProtocols []createdProtocol `json:"deviceProtocols"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("POST /lwm2m/deviceprotocols: decode answer: %w", err)
	}
	return res.DeviceProtocols, nil
}
