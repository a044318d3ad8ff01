package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildForTest compiles a program of this module (pkg relative to the
// repository's root) into dir.
func buildForTest(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, pkg)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// `decode` runs one value through a decoder of the plugins file, started
// for real: the bundled CBOR decoder and the host's test plugin as
// processes, and an HTTP decoder with the Cumulocity interface. Each case
// checks the JSON printed and the exit status scripts rely on.
func TestDecodeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds decoder programs")
	}
	dir := t.TempDir()
	cborBin := buildForTest(t, dir, "cbor-decoder", "./decoders/cbor/cmd/cbor-decoder")
	testBin := buildForTest(t, dir, "testplugin", "./agent/plugins/testdata/testplugin")

	httpDec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Args  map[string]string `json:"args"`
			Value string            `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"success":true,"measurements":[{"type":"c8y_Raw","series":"c8y_Raw","values":[{"seriesName":%q,"value":%d}]}]}`,
			req.Args["resourcePath"]+" "+req.Value, len(req.Value)/2)
	}))
	t.Cleanup(httpDec.Close)

	conf := filepath.Join(dir, "plugins.json")
	spec := fmt.Sprintf(`{"plugins":[
	  {"name":"cbor","kind":"decoder","path":%q,"args":["--type","c8y_CBOR"]},
	  {"name":"stuck","kind":"decoder","path":%q,"args":["decoder"],"timeout":"300ms"},
	  {"name":"nostart","kind":"decoder","path":%q},
	  {"name":"rules","kind":"mapping","path":%q,"args":["mapping"]},
	  {"name":"legacy","kind":"decoder","url":%q}
	]}`, cborBin, testBin, "/bin/true", testBin, httpDec.URL+"/decode")
	if err := os.WriteFile(conf, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	badConf := filepath.Join(dir, "bad-plugins.json")
	if err := os.WriteFile(badConf, []byte(`{"plugins":[{"name":"a","kind":"decoder","url":"http://x","timeout":"fast"},{"name":"a","kind":"decodr","url":"http://x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	frame := filepath.Join(dir, "frame.bin")
	if err := os.WriteFile(frame, []byte{0xa1, 0x61, 0x54, 0xf9, 0x4d, 0x60}, 0o600); err != nil { // {"T": 21.5}
		t.Fatal(err)
	}

	type measurement struct {
		Type, Series string
		Value        float64
	}
	type output struct {
		Plugin, Path, Argument, Value, Message string
		Success                                bool
		Measurements                           []measurement
	}
	for _, tt := range []struct {
		name    string
		args    []string
		env     bool // the plugins file from LWM2M_AGENT_PLUGINS_CONFIG, not the flag
		code    int
		want    *output // the JSON printed, when one is
		wantErr string
		conf    string // the plugins file, when not conf
	}{
		{name: "argument as the type", args: []string{"--plugin", "cbor", "--arg", "c8y_Env", "--path", "/19/0/0", "--hex", "a2 61 48 18 28 61 54 f9 4d 60"},
			want: &output{Plugin: "cbor", Path: "/19/0/0", Argument: "c8y_Env", Value: "a2614818286154f94d60", Success: true,
				Measurements: []measurement{{"c8y_Env", "H", 40}, {"c8y_Env", "T", 21.5}}}},
		{name: "bytes from a file, file from the environment", env: true, args: []string{"--plugin", "cbor", "--file", frame},
			want: &output{Plugin: "cbor", Value: "a16154f94d60", Success: true, Measurements: []measurement{{"c8y_CBOR", "T", 21.5}}}},
		{name: "http decoder", args: []string{"--plugin", "legacy", "--path", "/19/0/0", "--hex", "0x0102"},
			want: &output{Plugin: "legacy", Path: "/19/0/0", Value: "0102", Success: true, Measurements: []measurement{{"c8y_Raw", "/19/0/0 0102", 2}}}},
		{name: "refused by the decoder", args: []string{"--plugin", "cbor", "--path", "/19/0/0", "--hex", "00"}, code: decodeRefused,
			want: &output{Plugin: "cbor", Path: "/19/0/0", Value: "00", Message: "decode /19/0/0: cbor: not a CBOR map (a uint64)"}, wantErr: "decoder cbor refused the value"},
		{name: "unknown plugin", args: []string{"--plugin", "nope", "--hex", "00"}, code: decodeUsage,
			wantErr: `unknown plugin "nope": the decoders of ` + conf + ` are cbor, stuck, nostart, legacy`},
		{name: "not a decoder", args: []string{"--plugin", "rules", "--hex", "00"}, code: decodeUsage, wantErr: "is a mapping plugin, not a decoder"},
		{name: "bad hex", args: []string{"--plugin", "cbor", "--hex", "6g"}, code: decodeUsage, wantErr: `--hex "6g" is not hex`},
		{name: "no value", args: []string{"--plugin", "cbor"}, code: decodeUsage, wantErr: "exactly one of --hex and --file"},
		{name: "two values", args: []string{"--plugin", "cbor", "--hex", "00", "--file", frame}, code: decodeUsage, wantErr: "exactly one of --hex and --file"},
		{name: "bad path", args: []string{"--plugin", "cbor", "--hex", "00", "--path", "/19/0"}, code: decodeUsage, wantErr: `--path "/19/0" is not a resource`},
		{name: "missing file", args: []string{"--plugin", "cbor", "--file", filepath.Join(dir, "none")}, code: decodeUsage, wantErr: "--file: open"},
		{name: "unknown flag", args: []string{"--plugin", "cbor", "--hexx", "00"}, code: decodeUsage, wantErr: "unknown flag: --hexx"},
		{name: "hung decoder", args: []string{"--plugin", "stuck", "--path", "/19/0/0", "--hex", "68616e67"}, code: decodeNoVerdict, // "hang"
			wantErr: "decoder stuck: decode /19/0/0: plugin stuck: plugin unavailable: no answer within 300ms"},
		{name: "bad plugins file", conf: badConf, args: []string{"--plugin", "a", "--hex", "00"}, code: decodeUsage,
			wantErr: "plugins config " + badConf + ": 4 problems:\n\tplugins[0].timeout: invalid duration \"fast\""},
		{name: "decoder that does not start", args: []string{"--plugin", "nostart", "--hex", "00"}, code: decodeNoVerdict,
			wantErr: "the process did not start"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args, file := tt.args, conf
			if tt.conf != "" {
				file = tt.conf
			}
			if tt.env {
				t.Setenv("LWM2M_AGENT_PLUGINS_CONFIG", conf)
			} else {
				t.Setenv("LWM2M_AGENT_PLUGINS_CONFIG", "")
				args = append([]string{"--plugins-config", file}, args...)
			}
			cmd := decodeCmd()
			var out, log bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&log)
			cmd.SetArgs(args)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			// the message starts with what was wanted: nothing before it
			// names the file a second time
			if code != tt.code || (tt.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.wantErr) ||
				tt.conf != "" && err != nil && !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("exit %d, err %v; want exit %d, err containing %q\nstdout: %s\nstderr: %s", code, err, tt.code, tt.wantErr, out.String(), log.String())
			}
			if tt.want == nil {
				if out.Len() > 0 {
					t.Errorf("printed %s, want nothing on standard output", out.String())
				}
				return
			}
			var got output
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(*tt.want) {
				t.Errorf("printed %+v\nwant    %+v", got, *tt.want)
			}
		})
	}
}
