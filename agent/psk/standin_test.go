package psk

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/dtlsprobe"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
)

// A client with an identity nobody holds and one with a known identity
// and a wrong key see the same handshake: the same records from the
// server, no alert, a failure only when they give up. The server logs
// and counts each under its own cause, without a key.
func TestUnknownIdentityFailsLikeWrongKey(t *testing.T) {
	keys := func(_ context.Context, id string) ([]byte, error) {
		if id == "dev-1" {
			return []byte("key-of-dev-1"), nil
		}
		return nil, ErrUnknownIdentity
	}
	var logs logbuf.Buffer
	refused := refusal.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	l, err := Listen("127.0.0.1:0", keys, Limits{HandshakeTimeout: time.Second}, nil, nil, refused)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l)

	// The client gives up after the server has: what it saw until then
	// is all the server will send.
	unknown := dtlsprobe.Handshake(t, l.Addr(), "nobody", []byte("key-of-dev-1"), 2*time.Second)
	wrong := dtlsprobe.Handshake(t, l.Addr(), "dev-1", []byte("not-the-key"), 2*time.Second)
	if unknown.Err == nil || wrong.Err == nil {
		t.Fatalf("a handshake succeeded: unknown identity %v, wrong key %v", unknown.Err, wrong.Err)
	}
	if !slices.Equal(unknown.Records, wrong.Records) || unknown.Alerted() {
		t.Errorf("the server's records differ or hold an alert:\nunknown identity %v (%v)\nwrong key        %v (%v)",
			unknown.Records, unknown.Err, wrong.Records, wrong.Err)
	}
	if d := unknown.Took - wrong.Took; d > 500*time.Millisecond || d < -500*time.Millisecond {
		t.Errorf("the handshakes failed %v apart: unknown identity after %v, wrong key after %v", d, unknown.Took, wrong.Took)
	}

	testbound.Until(t, 5*time.Second, "both failures counted", func() bool {
		return refused.Count(CauseUnknownIdentity) == 1 && refused.Count(CauseWrongKey) == 1
	})
	if n := l.HandshakeFailures(); n != 2 {
		t.Errorf("handshake failures %d, want 2", n)
	}
	out := logs.String()
	for _, want := range []string{"cause=" + CauseUnknownIdentity, `psk_identity="\"nobody\""`, "cause=" + CauseWrongKey, `psk_identity="\"dev-1\""`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "key-of-dev-1") || strings.Contains(out, "not-the-key") {
		t.Errorf("log holds a key:\n%s", out)
	}
}

// One identity always gets the same stand-in key, another identity
// another; each hold is released once; an identity in a log is quoted and
// cut short.
func TestStandInKeys(t *testing.T) {
	if got := quoteIdentity(strings.Repeat("x", 1000)); len(got) > maxLoggedIdentity+8 {
		t.Errorf("a 1000-byte identity is logged as %d bytes", len(got))
	}
	r := newKeyring(func(context.Context, string) ([]byte, error) { return nil, ErrUnknownIdentity }, Limits{}.withDefaults(), slog.New(slog.DiscardHandler))
	a, _ := r.key([]byte("a"))
	a2, _ := r.key([]byte("a"))
	b, _ := r.key([]byte("b"))
	if !slices.Equal(a, a2) || slices.Equal(a, b) || len(a) != standInKeySize {
		t.Errorf("stand-in keys: a %x, a again %x, b %x", a, a2, b)
	}
	var released []bool
	for _, id := range []string{"a", "a", "a", "b", "c"} {
		released = append(released, r.release(id) != nil)
	}
	if want := []bool{true, true, false, true, false}; !slices.Equal(released, want) {
		t.Errorf("released %v, want %v: each hold once", released, want)
	}
}
