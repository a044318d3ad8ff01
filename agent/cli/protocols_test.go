package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cliDDF = `<?xml version="1.0" encoding="utf-8"?>
<LWM2M>
  <Object ObjectType="MODefinition">
    <Name>Level</Name>
    <Description1>A level sensor.</Description1>
    <ObjectID>33001</ObjectID>
    <ObjectURN>urn:oma:lwm2m:x:33001</ObjectURN>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="0">
        <Name>Level</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Float</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units>m</Units>
        <Description>Level.</Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
`

// `import protocols` against a running agent: per file the objects stored
// or the reason, a directory's .xml files in order, and the exit status.
func TestImportProtocols(t *testing.T) {
	a := startTestAgent(t, false)
	ctx := context.Background()

	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("b-level.xml", cliDDF)
	write("a-second.xml", strings.ReplaceAll(strings.ReplaceAll(cliDDF, "33001", "33002"), "<Name>Level</Name>\n    <Desc", "<Name>Volume</Name>\n    <Desc"))
	// an element the schema does not know: refused, readable when lenient
	unordered := write("c-unknown.xml", strings.Replace(strings.ReplaceAll(cliDDF, "33001", "33003"),
		"<Units>m</Units>", "<Units>m</Units><Color>red</Color>", 1))
	write("notes.txt", "not a DDF file")

	run := func(args ...string) (string, error) {
		cmd := importCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append(append([]string{"protocols"}, args...), "--url", "http://"+a.HTTPAddr.String(), "--password", "Admin-pass-1234!", "--timeout", "30s"))
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		err := cmd.ExecuteContext(cctx)
		return out.String(), err
	}

	out, err := run(good)
	if err != nil || out != good+": 33001 (Level)\n1 files: 1 objects stored, 0 files failed\n" {
		t.Errorf("one file: %v\n%s", err, out)
	}

	out, err = run(dir)
	want := []string{
		filepath.Join(dir, "a-second.xml") + ": 33002 (Volume)",
		good + ": 33001 (Level)",
		unordered + ": refused: ddf: line 18: <Color>: unknown element in <Item>: expected one of <Name>, <Operations>, <MultipleInstances>, <Mandatory>, <Type>, <RangeEnumeration>, <Units>, <Description>",
		"3 files: 2 objects stored, 1 files failed",
	}
	if err == nil || out != strings.Join(want, "\n")+"\n" {
		t.Errorf("directory: %v\n%s\nwant\n%s", err, out, strings.Join(want, "\n"))
	}

	out, err = run(unordered, "--lenient")
	if err != nil || !strings.Contains(out, ": 33003 (Level)") {
		t.Errorf("--lenient: %v\n%s", err, out)
	}
	p, err := a.Protocols.OwnProtocol(ctx, "management", 33003)
	if err != nil || p.Source != "c-unknown.xml" {
		t.Errorf("stored: %+v %v", p, err)
	}

	if _, err := run(filepath.Join(dir, "missing.xml")); err == nil {
		t.Error("a missing file did not fail")
	}
	if out, err := run(good, "--user", "management/nobody"); err == nil || strings.Contains(out, "refused") {
		t.Errorf("wrong credentials: %v\n%s", err, out)
	}
}
