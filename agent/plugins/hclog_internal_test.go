package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// lines is a slog handler that keeps each record's message.
type lines struct{ msgs *[]string }

func (l lines) Enabled(context.Context, slog.Level) bool { return true }
func (l lines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l lines) WithGroup(string) slog.Handler            { return l }
func (l lines) Handle(_ context.Context, r slog.Record) error {
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}

func TestOutputLines(t *testing.T) {
	long := strings.Repeat("x", maxOutputLine)
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"several in one write", []string{"a\nb\nc\n"}, []string{"a", "b", "c"}},
		{"carriage returns and blank lines", []string{"a\r\n\n\r\nb\n"}, []string{"a", "b"}},
		{"unfinished line waits", []string{"a\npartial"}, []string{"a"}},
		{"a line without end is cut at the bound", []string{long, "tail\n"}, []string{long, "tail"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			o := newOutputLines(slog.New(lines{&got}), "stderr")
			for _, w := range tc.writes {
				if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("logged %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level      hclog.Level
		fromPlugin bool
		want       slog.Level
	}{
		{hclog.Trace, true, slog.LevelDebug},
		{hclog.Debug, true, slog.LevelDebug},
		{hclog.Info, true, slog.LevelInfo},
		{hclog.Warn, true, slog.LevelWarn},
		{hclog.Error, true, slog.LevelError},
		// go-plugin's own lines at Info tell of its machinery
		{hclog.Info, false, slog.LevelDebug},
		{hclog.Warn, false, slog.LevelWarn},
		{hclog.Error, false, slog.LevelError},
	}
	for _, tc := range tests {
		if got := slogLevel(tc.level, tc.fromPlugin); got != tc.want {
			t.Errorf("slogLevel(%v, %v) = %v, want %v", tc.level, tc.fromPlugin, got, tc.want)
		}
	}
}

// go-plugin's own lines name the executable "plugin": in the agent's log
// it is the path, and plugin stays the plugin's name.
func TestGoPluginLinesKeepThePluginsName(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "temp", "kind", "decoder")
	newHCLogger(log, "tempframe").Error("plugin process exited", "plugin", "/usr/lib/lwm2m-agent/tempframe", "id", 42)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["plugin"] != "temp" || line["path"] != "/usr/lib/lwm2m-agent/tempframe" || strings.Count(buf.String(), `"plugin":`) != 1 {
		t.Errorf("logged %s, want plugin temp once and the path as path", buf.Bytes())
	}
}
