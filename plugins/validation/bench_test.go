package validation

import (
	"context"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The ruleset of API.md, two groups, one rule comparing with another
// resource: what a write of a rule-bound resource costs per value.
var benchRules = store.ValidationRules{Groups: [][]store.ValidationRule{
	{{Type: "STRING", Rule: "EQUALS_NOT", Value: "test"}},
	{{Type: "REGEX", Rule: "EQUALS", Value: ".*asd$"}, {Type: "STRING", Rule: "EQUALS", Resource: "/3/0/15"}},
}}

func benchLookup(node.Path) (node.Value, bool) { return node.String("Europe/Berlin"), true }

// BenchmarkRulesetCheck is one value through a compiled ruleset (the
// design's target: 2 µs per value).
func BenchmarkRulesetCheck(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rules store.ValidationRules
		value node.Value
	}{
		{"string", one("STRING", "EQUALS_NOT", "test"), node.String("prod")},
		{"number range", store.ValidationRules{Groups: [][]store.ValidationRule{{
			{Type: "NUMBER", Rule: "GREATER_OR_EQUALS", Value: 0.0}, {Type: "NUMBER", Rule: "LOWER_THAN", Value: 100.0}}}}, node.Float(21.5)},
		{"date", one("DATE", "GREATER_THAN", "2024-01-01T00:00:00Z"), node.String("2024-05-01T12:00:00Z")},
		{"two groups, the second holds", store.ValidationRules{Groups: [][]store.ValidationRule{
			{{Type: "NUMBER", Rule: "LOWER_THAN", Value: 0.0}},
			{{Type: "NUMBER", Rule: "GREATER_THAN", Value: 10.0}, {Type: "NUMBER", Rule: "LOWER_THAN", Value: 20.0}}}}, node.Int(15)},
		{"api example, refused", benchRules, node.String("test")},
		{"api example, valid", benchRules, node.String("prod")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rs, err := Compile(bc.rules)
			if err != nil {
				b.Fatal(err)
			}
			p := node.MustParsePath("/3/0/14")
			b.ReportAllocs()
			for b.Loop() {
				_ = rs.Check(p, bc.value, benchLookup)
			}
		})
	}
}

// BenchmarkValidatorCheck adds what a write pays around the ruleset: the
// rule lookup, the content hash that keeps the cache fresh, and the cache.
func BenchmarkValidatorCheck(b *testing.B) {
	src := &rulesIn{rules: map[cacheKey]store.ValidationRules{}}
	src.set("acme", 3, 14, benchRules)
	vals := &valuesIn{vals: []store.ResourceValue{{Path: "/3/0/15", Type: "STRING", Value: "Europe/Berlin"}}}
	v := New(Config{Rules: src, Values: vals})
	recs := []node.Record{{Path: node.MustParsePath("/3/0/14"), Value: node.String("prod")}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Check(ctx, "acme", "d1", recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile is the cost of a cache miss.
func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(benchRules); err != nil {
			b.Fatal(err)
		}
	}
}
