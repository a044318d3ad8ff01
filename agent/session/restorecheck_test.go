package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A registration stored before a restart comes back only if the
// device's registration record allows it now, by the rules of Authorize:
// a plain one of a device whose record says PSK, names no security mode,
// is being written or is missing, and a DTLS one whose identity the
// record no longer names or that is no PSK device any more, are ended:
// the device is marked offline with a security event saying why, and its
// next Update is answered 4.04. The others are restored and updated.
func TestRestoreEndsRegistrationsTheRecordNoLongerAllows(t *testing.T) {
	hooks, st, _, _, _ := hooksWithState(t, 0)
	ctx := context.Background()

	noSec := &store.DeviceRegistration{Params: map[string]any{store.ParamSecurityMode: store.SecurityNoSec}}
	pskOf := func(identity string) *store.DeviceRegistration {
		return &store.DeviceRegistration{Params: map[string]any{store.ParamSecurityMode: store.SecurityPSK, "lwm2mPskId": identity}, PSKKey: []byte{1, 2}}
	}
	devices := []struct {
		ep       string
		record   *store.DeviceRegistration // nil: none
		complete bool
		identity string // "": a plain registration
		want     string // "": restored
	}{
		{"plain", noSec, true, "", ""},
		{"dtls", pskOf("dtls-id"), true, "dtls-id", ""},
		{"plain-now-psk", pskOf("now-psk-id"), true, "", RestorePSK},
		{"plain-key-only", &store.DeviceRegistration{Params: map[string]any{}, PSKKey: []byte{1}}, true, "", RestorePSK},
		{"plain-no-mode", &store.DeviceRegistration{Params: map[string]any{"awakeTimeRegistrationParameter": int64(0)}}, true, "", RestoreNoSecurityMode},
		{"plain-half", noSec, false, "", RestoreIncomplete},
		{"plain-no-record", nil, false, "", RestoreNoRecord},
		{"dtls-moved", pskOf("moved-new"), true, "moved-old", RestoreIdentityChanged},
		{"dtls-now-nosec", noSec, true, "nosec-id", RestoreNotPSK},
	}
	ids := map[string]string{}
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	for i, d := range devices {
		var id string
		if d.record == nil {
			mo, err := st.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: d.ep, Type: store.DeviceType})
			if err != nil {
				t.Fatal(err)
			}
			id = mo.ID
		} else {
			var err error
			if id, err = st.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: d.ep, Registration: *d.record}); err != nil {
				t.Fatal(err)
			}
			if d.complete {
				if err := st.CompleteDevice(ctx, "acme", id); err != nil {
					t.Fatal(err)
				}
			}
		}
		ids[d.ep] = id
		reg := lwm2m.Registration{
			ID: "r" + id, Endpoint: d.ep, Version: "1.1", Lifetime: time.Hour, Binding: "U",
			Address: fmt.Sprintf("127.0.0.1:%d", 10000+i), RegisteredAt: at, UpdatedAt: at,
			Objects: []lwm2m.ObjectLink{{Path: node.InstancePath(3, 0)}},
		}
		if d.identity != "" {
			reg.Secure, reg.PSKIdentity, reg.Address = true, d.identity, ""
		}
		if err := st.UpdateFragments(ctx, "acme", id, bson.M{"lwm2m": Fragment(reg)}); err != nil {
			t.Fatal(err)
		}
	}

	srv, err := lwm2m.NewServer(lwm2m.Config{Addr: "127.0.0.1:0"}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	hooks.SetServer(srv)
	stats, err := Restore(ctx, hooks, srv)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Restored != 2 || stats.Ended != len(devices)-2 || stats.Skipped != 0 {
		t.Fatalf("restored %d, ended %d, skipped %d; want 2, %d, 0", stats.Restored, stats.Ended, stats.Skipped, len(devices)-2)
	}
	for _, d := range devices {
		if _, live := srv.Registration(d.ep); live != (d.want == "") {
			t.Errorf("%s: live %v after the restore, want %v", d.ep, live, d.want == "")
		}
		if d.want == "" {
			continue
		}
		mo, err := st.GetManagedObject(ctx, "acme", ids[d.ep])
		if err != nil {
			t.Fatal(err)
		}
		lw, _ := mo.Fragments["lwm2m"].(map[string]any)
		conn, _ := mo.Fragments["c8y_Connection"].(map[string]any)
		if lw["registrationId"] != "" || conn["status"] != "DISCONNECTED" {
			t.Errorf("%s: registration %v, connection %v after the restore, want ended, DISCONNECTED", d.ep, lw["registrationId"], conn["status"])
		}
		evs := eventsOf(t, st, "acme", ids[d.ep], EventSecurity)
		if len(evs) != 1 || !strings.Contains(evs[0].Text, "not restored") || !strings.Contains(evs[0].Text, restoreReasonText[d.want]) {
			t.Errorf("%s: security events %+v, want one saying %q", d.ep, evs, restoreReasonText[d.want])
		}
	}

	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx) }()
	t.Cleanup(func() { stop(); <-served })
	<-srv.Serving()
	c, err := udp.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	updateCode := func(ep string) codes.Code {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		req, err := c.NewPostRequest(rctx, "/rd/r"+ids[ep], message.TextPlain, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("update of %s: %v", ep, err)
		}
		return resp.Code()
	}
	for _, ep := range []string{"plain-now-psk", "plain-no-mode", "plain-half", "plain-no-record"} {
		if code := updateCode(ep); code != codes.NotFound {
			t.Errorf("Update of %s's ended registration: %v, want 4.04", ep, code)
		}
	}
	if code := updateCode("plain"); code != codes.Changed {
		t.Errorf("Update of the restored registration: %v, want 2.04", code)
	}
	testbound.Until(t, 10*time.Second, "the restored device marked online", func() bool {
		mo, err := st.GetManagedObject(ctx, "acme", ids["plain"])
		conn, _ := mo.Fragments["c8y_Connection"].(map[string]any)
		return err == nil && conn["status"] == "CONNECTED"
	})
}

// restoreRefusal takes a record as Authorize does.
func TestRestoreRefusal(t *testing.T) {
	plain := lwm2m.Registration{Endpoint: "e"}
	secure := lwm2m.Registration{Endpoint: "e", Secure: true, PSKIdentity: "id"}
	tests := []struct {
		name string
		reg  lwm2m.Registration
		rec  *store.RecordAccess
		want string
	}{
		{"plain, NO_SEC", plain, &store.RecordAccess{SecurityMode: store.SecurityNoSec}, ""},
		{"plain, NO_SEC with a key", plain, &store.RecordAccess{SecurityMode: store.SecurityNoSec, Keyed: true}, RestorePSK},
		{"plain, PSK", plain, &store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "id", Keyed: true}, RestorePSK},
		{"plain, no mode", plain, &store.RecordAccess{}, RestoreNoSecurityMode},
		{"plain, an unknown mode", plain, &store.RecordAccess{SecurityMode: "RPK"}, RestoreNoSecurityMode},
		{"plain, incomplete", plain, &store.RecordAccess{SecurityMode: store.SecurityNoSec, Incomplete: true}, RestoreIncomplete},
		{"plain, no record", plain, nil, RestoreNoRecord},
		{"DTLS, PSK of its identity", secure, &store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "id", Keyed: true}, ""},
		{"DTLS, PSK of another identity", secure, &store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "other", Keyed: true}, RestoreIdentityChanged},
		{"DTLS, PSK being deleted", secure, &store.RecordAccess{SecurityMode: store.SecurityPSK, PSKIdentity: "id", Keyed: true, Incomplete: true}, RestoreIncomplete},
		{"DTLS, NO_SEC", secure, &store.RecordAccess{SecurityMode: store.SecurityNoSec, PSKIdentity: "id"}, RestoreNotPSK},
		{"DTLS, no record", secure, nil, RestoreNoRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := restoreRefusal(tc.reg, tc.rec); got != tc.want {
				t.Errorf("refusal %q, want %q", got, tc.want)
			}
		})
	}
}
