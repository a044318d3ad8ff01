package model

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/ddftest"
)

func TestParseDDFLimits(t *testing.T) {
	limits := Limits{Objects: 3, Resources: 4}
	tests := []struct {
		name  string
		doc   string
		cause string
		line  int
		says  string
	}{
		{"at the limits", ddftest.Doc(4, 0, 4), "", 0, ""},
		{"too many objects", ddftest.Doc(1, 1, 1, 1), CauseObjects, 5, "ddf: line 5: more than 3 objects in one document"},
		{"too many resources", ddftest.Doc(1, 5), CauseResources, 3, "ddf: line 3: more than 4 resources in one object"},
		{"a bare object", strings.TrimSuffix(strings.TrimPrefix(ddftest.Doc(5), "<LWM2M>\n"), "</LWM2M>\n"), CauseResources, 1, "more than 4 resources"},
		{"items elsewhere are no resources", "<LWM2M><Object><Name><Item/><Item/><Item/><Item/><Item/></Name></Object></LWM2M>", "", 0, ""},
	}
	for _, tc := range tests {
		for _, strict := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/strict=%v", tc.name, strict), func(t *testing.T) {
				_, err := ParseDDFWith(strings.NewReader(tc.doc), Options{Strict: strict, Limits: limits})
				var le *LimitError
				if tc.cause == "" {
					if errors.As(err, &le) {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if !errors.As(err, &le) || le.Cause != tc.cause || le.Line != tc.line || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("got %v, want %s at line %d saying %q", err, tc.cause, tc.line, tc.says)
				}
				if !errors.Is(err, ErrDDF) {
					t.Fatal("a limit error is no ErrDDF")
				}
			})
		}
	}
}

// The agent's default limits (100 objects, 1,000 resources) take every
// file of the OMA registry, whose largest object has 67 resources.
func TestParseDDFLimitsTakeTheRegistry(t *testing.T) {
	dir := registryDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseDDFWith(bytes.NewReader(data), Options{Limits: Limits{Objects: 100, Resources: 1000}})
		var le *LimitError
		if errors.As(err, &le) {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// FuzzParseDDFLimits holds the limits to what the parser reads: a
// document passes them exactly when it has no more objects and no object
// more resources than they allow.
func FuzzParseDDFLimits(f *testing.F) {
	f.Add([]byte(ddftest.Doc(1, 2)), 1, 2)
	f.Add([]byte(ddftest.Doc(3)), 1, 2)
	f.Add([]byte(ddftest.Doc(1, 1, 1)), 2, 5)
	f.Add([]byte(tempDoc), 1, 1)
	f.Add([]byte("<Object><Resources><Item/><Item/></Resources></Object>"), 1, 1)
	f.Fuzz(func(t *testing.T, data []byte, objects, resources int) {
		objects, resources = 1+int(uint(objects)%8), 1+int(uint(resources)%8)
		limited, err := ParseDDFWith(bytes.NewReader(data), Options{Limits: Limits{Objects: objects, Resources: resources}})
		var le *LimitError
		if errors.As(err, &le) {
			if le.Line < 1 {
				t.Fatalf("limit error without a line: %v", err)
			}
			return
		}
		free, ferr := ParseDDF(bytes.NewReader(data))
		if (err == nil) != (ferr == nil) {
			t.Fatalf("with limits %v, without %v", err, ferr)
		}
		if len(free) > objects {
			t.Fatalf("%d objects passed a limit of %d", len(free), objects)
		}
		for _, d := range free {
			if len(d.Resources) > resources {
				t.Fatalf("object %d has %d resources and passed a limit of %d", d.ID, len(d.Resources), resources)
			}
		}
		if len(limited) != len(free) {
			t.Fatalf("%d objects with limits, %d without", len(limited), len(free))
		}
	})
}
