package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestConfigurationDoc keeps docs/configuration.md in step with settings():
// every setting must have a row in its table ("| `--flag` | `VARIABLE` |
// default | meaning |") naming its environment variable and its default,
// so that a setting added or changed here cannot be missing from, or
// wrong in, the operators' reference.
func TestConfigurationDoc(t *testing.T) {
	const path = "../../docs/configuration.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the configuration reference: %v", err)
	}
	rows := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		flag, _, _ := strings.Cut(strings.TrimPrefix(line, "| `--"), "`")
		rows[flag] = line
	}
	c := Default()
	for _, s := range c.settings() {
		env := EnvName(s.name)
		row, ok := rows[s.name]
		if !ok {
			t.Errorf("%s: setting --%s (%s) has no row in the table", path, s.name, env)
			continue
		}
		cells := strings.Split(row, "|")
		if len(cells) < 5 {
			t.Errorf("%s: the row of --%s has %d cells, want flag, variable, default, meaning", path, s.name, len(cells)-2)
			continue
		}
		if got := strings.TrimSpace(cells[2]); got != "`"+env+"`" {
			t.Errorf("%s: --%s: variable cell is %s, want `%s`", path, s.name, got, env)
		}
		def := strings.TrimSpace(cells[3])
		want := ""
		switch {
		case s.str != nil:
			want = *s.str
		case s.b != nil:
			want = strconv.FormatBool(*s.b)
		case s.d != nil:
			want = s.d.String()
		case s.i != nil:
			want = strconv.Itoa(*s.i)
		}
		if want == "" {
			if !strings.HasPrefix(def, "empty") {
				t.Errorf("%s: --%s: default cell is %s, want it to start with \"empty\"", path, s.name, def)
			}
			continue
		}
		if !strings.HasPrefix(def, "`"+want+"`") {
			t.Errorf("%s: --%s: default cell is %s, want `%s`", path, s.name, def, want)
		}
	}
}

// TestSecurityTableNamesSettings keeps the README's table of limits
// honest: every flag it names must be a setting of serve, so that a
// renamed or removed limit cannot leave operators a flag that fails.
func TestSecurityTableNamesSettings(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read the README: %v", err)
	}
	text := string(data)
	start := strings.Index(text, "## Security and limits\n")
	if start < 0 {
		t.Fatal("README has no section \"Security and limits\"")
	}
	section := text[start+3:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	known := map[string]bool{}
	c := Default()
	for _, s := range c.settings() {
		known[s.name] = true
	}
	n := 0
	for _, part := range strings.Split(section, "`--")[1:] {
		flag, _, _ := strings.Cut(part, "`")
		n++
		if !known[flag] {
			t.Errorf("README security section names --%s, which is not a setting of serve", flag)
		}
	}
	if n < 20 {
		t.Errorf("README security section names %d settings; the table of limits is missing", n)
	}
}
