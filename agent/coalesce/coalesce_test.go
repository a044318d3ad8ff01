package coalesce

import (
	"strings"
	"testing"
	"time"
)

// Within an interval only the first event of a kind is stored; the first
// after it says how many were held back and since when; forgetting a
// device makes its next event news.
func TestEvents(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := New(time.Minute)
	admitted := 0
	for i := range 100 {
		if ok, _ := c.Admit("d", t0.Add(time.Duration(i)*100*time.Millisecond)); ok {
			admitted++
		}
	}
	if admitted != 1 {
		t.Fatalf("%d of 100 events within a minute stored, want 1", admitted)
	}
	ok, held := c.Admit("d", t0.Add(time.Minute))
	if !ok || held.Count != 99 || !held.Since.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("after the interval: %v, %+v; want stored, 99 since %v", ok, held, t0.Add(100*time.Millisecond))
	}
	if ok, _ := c.Admit("other", t0.Add(time.Minute)); !ok {
		t.Error("another device's event was held back")
	}
	c.Forget("d")
	if ok, held := c.Admit("d", t0.Add(time.Minute+time.Second)); !ok || held.Count != 0 {
		t.Errorf("after forget: %v, %+v; want stored, none held back", ok, held)
	}
	// swept once their interval passed, unless they hold events back
	c.Admit("d", t0.Add(time.Minute+2*time.Second))
	c.Admit("x", t0.Add(3*time.Minute))
	if n := c.Len(); n != 2 {
		t.Errorf("%d entries after a sweep, want d (holding one back) and x", n)
	}
	if ok, _ := New(0).Admit("d", t0); !ok {
		t.Error("an interval of 0 held an event back")
	}
}

func TestHeldNote(t *testing.T) {
	h := Held{Count: 3, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}
	if got, want := h.Note(), " (3 more since 2026-01-02T02:04:05Z not recorded)"; got != want {
		t.Errorf("note %q, want %q", got, want)
	}
	if f := h.Fragment(); f["count"] != 3 || !strings.HasSuffix(f["since"].(time.Time).String(), "UTC") {
		t.Errorf("fragment %v", f)
	}
}
