package validation

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// rulesIn is an in-memory RuleSource that counts its lookups.
type rulesIn struct {
	mu    sync.Mutex
	rules map[cacheKey]store.ValidationRules
	err   error
}

func (r *rulesIn) ValidationRules(_ context.Context, tenant string, o, res uint16) (store.ValidationRules, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rules[cacheKey{tenant, o, res}], r.err
}

func (r *rulesIn) set(tenant string, o, res uint16, rules store.ValidationRules) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules[cacheKey{tenant, o, res}] = rules
}

type valuesIn struct {
	vals  []store.ResourceValue
	err   error
	reads int
}

func (v *valuesIn) Values(context.Context, string, string) ([]store.ResourceValue, error) {
	v.reads++
	return v.vals, v.err
}

func rec(path string, v node.Value) node.Record {
	return node.Record{Path: node.MustParsePath(path), Value: v}
}

func TestValidatorChecksEveryRecord(t *testing.T) {
	src := &rulesIn{rules: map[cacheKey]store.ValidationRules{}}
	src.set("acme", 3, 14, one("REGEX", "EQUALS", `[+-]\d\d:\d\d`))
	src.set("acme", 3, 15, ref("STRING", "EQUALS_NOT", "/3/0/14"))
	vals := &valuesIn{vals: []store.ResourceValue{{Path: "/3/0/14", Type: "STRING", Value: "+01:00"}}}
	v := New(Config{Rules: src, Values: vals})
	ctx := context.Background()

	if err := v.Check(ctx, "acme", "d1", []node.Record{rec("/3/0/14", node.String("+02:00")), rec("/3/0/15", node.String("Europe/Berlin")), rec("/3/0/1", node.String("no rules"))}); err != nil {
		t.Fatalf("valid writes refused: %v", err)
	}
	if vals.reads != 1 {
		t.Errorf("last values read %d times for one check, want once", vals.reads)
	}
	// both failures are named, each with its path
	err := v.Check(ctx, "acme", "d1", []node.Record{rec("/3/0/14", node.String("UTC+2")), rec("/3/0/15", node.String("+01:00"))})
	if !IsFailure(err) {
		t.Fatalf("want a validation failure, got %v", err)
	}
	for _, want := range []string{`validation of /3/0/14 failed: group 1: REGEX EQUALS "[+-]\\d\\d:\\d\\d"`, "validation of /3/0/15 failed: group 1: STRING EQUALS_NOT resource /3/0/14"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
	// rules are per tenant: another tenant without rules writes anything
	if err := v.Check(ctx, "other", "d2", []node.Record{rec("/3/0/14", node.String("UTC+2"))}); err != nil {
		t.Errorf("tenant without rules: %v", err)
	}
	// a store that fails is no validation failure
	vals.err = errors.New("connection refused")
	if err := v.Check(ctx, "acme", "d1", []node.Record{rec("/3/0/15", node.String("x"))}); err == nil || IsFailure(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("store error: %v", err)
	}
	src.err = errors.New("timeout")
	if err := v.Check(ctx, "acme", "d1", []node.Record{rec("/3/0/14", node.String("x"))}); err == nil || IsFailure(err) {
		t.Errorf("rule source error: %v", err)
	}
}

func TestValidatorCache(t *testing.T) {
	src := &rulesIn{rules: map[cacheKey]store.ValidationRules{}}
	src.set("acme", 3, 14, one("STRING", "EQUALS_NOT", "a"))
	v := New(Config{Rules: src, CacheSize: 3})
	ctx := context.Background()

	first, err := v.Ruleset(ctx, "acme", 3, 14)
	if err != nil || first == nil {
		t.Fatalf("Ruleset: %v %v", first, err)
	}
	again, _ := v.Ruleset(ctx, "acme", 3, 14)
	if again != first {
		t.Error("unchanged rules compiled again")
	}
	// changed rules are compiled again, in the same entry
	src.set("acme", 3, 14, one("STRING", "EQUALS_NOT", "b"))
	changed, _ := v.Ruleset(ctx, "acme", 3, 14)
	if changed == first {
		t.Fatal("changed rules answered from the cache")
	}
	if err := v.Check(ctx, "acme", "d", []node.Record{rec("/3/0/14", node.String("a"))}); err != nil {
		t.Errorf("old rule still applied: %v", err)
	}
	if err := v.Check(ctx, "acme", "d", []node.Record{rec("/3/0/14", node.String("b"))}); err == nil {
		t.Error("new rule not applied")
	}
	if n := v.cached(); n != 1 {
		t.Errorf("%d entries for one resource", n)
	}
	// removed rules: nothing to check
	src.set("acme", 3, 14, store.ValidationRules{})
	if rs, _ := v.Ruleset(ctx, "acme", 3, 14); rs != nil {
		t.Error("removed rules still apply")
	}
	// bounded: the least recently used go
	for r := range uint16(10) {
		src.set("acme", 3303, r, one("NUMBER", "GREATER_THAN", float64(r)))
		if _, err := v.Ruleset(ctx, "acme", 3303, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cached(); n != 3 {
		t.Errorf("cache holds %d, bound 3", n)
	}
}

// Rules are compiled while requests check values; run with -race.
func TestValidatorConcurrent(t *testing.T) {
	src := &rulesIn{rules: map[cacheKey]store.ValidationRules{}}
	for r := range uint16(8) {
		src.set("acme", 3303, r, one("NUMBER", "LOWER_THAN", 100.0))
	}
	v := New(Config{Rules: src, CacheSize: 4})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r := uint16((w + i) % 8)
				if err := v.Check(context.Background(), "acme", "d", []node.Record{{Path: node.ResourcePath(3303, 0, r), Value: node.Int(int64(i % 150))}}); (err != nil) != (i%150 >= 100) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("value %v", err)
	}
}
