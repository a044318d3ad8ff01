package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var tenantCases = []suiteCase{
	{"CreateAndAuthenticate", testTenantsAndAuthentication},
	{"GetTenant", testGetTenant},
	{"ListTenants", testListTenants},
	{"EnsureManagementGivenPassword", testEnsureManagementGivenPassword},
	{"EnsureManagementChangesPassword", testEnsureManagementChangesPassword},
	{"PostOperationsPerTenant", testPostOperationsPerTenant},
	{"PostOperationsBounds", testPostOperationsBounds},
}

func testTenantsAndAuthentication(t *testing.T, s store.Engine) {
	pw := must(s.EnsureManagement(ctx, "")).Generated
	if len(pw) < 16 {
		t.Fatalf("generated password %q is too short", pw)
	}
	if again := must(s.EnsureManagement(ctx, "")); again != (store.Management{}) {
		t.Fatalf("second EnsureManagement without a password: %+v", again)
	}
	must(s.CreateTenant(ctx, "acme", "boss", "secret-1"))
	if _, err := s.CreateTenant(ctx, "acme", "x", "y"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: %v, want ErrConflict", err)
	}
	for _, bad := range []string{"", "Acme", "a/b", "-a", "a b"} {
		if _, err := s.CreateTenant(ctx, bad, "x", "y"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("tenant %q: %v, want ErrInvalid", bad, err)
		}
	}
	tests := []struct {
		name, tenant, user, pass string
		ok                       bool
	}{
		{"management admin", "management", "admin", pw, true},
		{"acme admin", "acme", "boss", "secret-1", true},
		{"wrong password", "acme", "boss", "secret-2", false},
		{"unknown user", "acme", "nobody", "secret-1", false},
		{"user of another tenant", "management", "boss", "secret-1", false},
		{"unknown tenant", "nope", "boss", "secret-1", false},
		{"empty password", "acme", "boss", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // an engine may answer the second round from a cache
				err := s.Authenticate(ctx, tc.tenant, tc.user, tc.pass)
				if tc.ok && err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if !tc.ok && !errors.Is(err, store.ErrUnauthorized) {
					t.Fatalf("Authenticate: %v, want ErrUnauthorized", err)
				}
			}
		})
	}
	u := must(s.Login(ctx, "acme", "boss", "secret-1"))
	if !u.IsAdmin() || u.Tenant != "acme" {
		t.Fatalf("Login: %+v", u)
	}
	// A changed password ends cached logins at once.
	check(t, s.SetPassword(ctx, "acme", "boss", "secret-2"))
	if err := s.Authenticate(ctx, "acme", "boss", "secret-1"); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("old password after change: %v", err)
	}
	check(t, s.Authenticate(ctx, "acme", "boss", "secret-2"))
	if err := s.SetPassword(ctx, "acme", "nobody", "secret-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("password of an unknown user: %v, want ErrNotFound", err)
	}

	check(t, s.CreateUser(ctx, "acme", "reader", "secret-r", nil))
	if u := must(s.Login(ctx, "acme", "reader", "secret-r")); u.IsAdmin() || u.Tenant != "acme" {
		t.Fatalf("Login of a user without roles: %+v", u)
	}
	if err := s.CreateUser(ctx, "acme", "reader", "other", nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate user: %v, want ErrConflict", err)
	}
}

func testGetTenant(t *testing.T, s store.Engine) {
	must(s.CreateTenant(ctx, "acme", "boss", "secret-1"))
	if got := must(s.GetTenant(ctx, "acme")); got.ID != "acme" {
		t.Fatalf("GetTenant: %+v", got)
	}
	if _, err := s.GetTenant(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v, want ErrNotFound", err)
	}
}

// Tenants are listed by ID, a page at a time, with their creation time
// and the total when asked for.
func testListTenants(t *testing.T, s store.Engine) {
	must(s.EnsureManagement(ctx, "Admin-pass-1234!"))
	for _, id := range []string{"zeta", "acme", "m-2"} {
		must(s.CreateTenant(ctx, id, "admin", "Tenant-pass-1234!"))
	}
	want := []string{"acme", "m-2", "management", "zeta"}
	tests := []struct {
		name  string
		page  store.Page
		ids   []string
		total int64
	}{
		{"all", store.Page{Size: 10, Current: 1, WithTotal: true}, want, 4},
		{"first page", store.Page{Size: 3, Current: 1, WithTotal: true}, want[:3], 4},
		{"second page", store.Page{Size: 3, Current: 2}, want[3:], -1},
		{"past the end", store.Page{Size: 3, Current: 3, WithTotal: true}, nil, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, total, err := s.ListTenants(ctx, tc.page)
			check(t, err)
			var ids []string
			for _, tn := range list {
				ids = append(ids, tn.ID)
				if tn.Domain == "" || tn.CreationTime.IsZero() {
					t.Errorf("tenant %+v lacks its domain or creation time", tn)
				}
			}
			if !slices.Equal(ids, tc.ids) || total != tc.total {
				t.Fatalf("ListTenants(%+v): %v, total %d; want %v, total %d", tc.page, ids, total, tc.ids, tc.total)
			}
		})
	}
}

func testEnsureManagementGivenPassword(t *testing.T, s store.Engine) {
	if m := must(s.EnsureManagement(ctx, "given")); m != (store.Management{}) {
		t.Fatalf("first start with a password: %+v", m)
	}
	check(t, s.Authenticate(ctx, store.ManagementTenant, "admin", "given"))
}

// A configured password that differs from the stored one replaces it, and
// the old one stops working at once (no cached login survives); the same
// password again, or none, changes nothing.
func testEnsureManagementChangesPassword(t *testing.T, s store.Engine) {
	must(s.EnsureManagement(ctx, "first-Pass-1!"))
	check(t, s.Authenticate(ctx, store.ManagementTenant, "admin", "first-Pass-1!"))
	for _, tc := range []struct {
		given   string
		changed bool
		valid   string
	}{
		{"first-Pass-1!", false, "first-Pass-1!"},
		{"", false, "first-Pass-1!"},
		{"second-Pass-2!", true, "second-Pass-2!"},
		{"second-Pass-2!", false, "second-Pass-2!"},
	} {
		m := must(s.EnsureManagement(ctx, tc.given))
		if m.PasswordChanged != tc.changed || m.Generated != "" {
			t.Errorf("EnsureManagement(%q) = %+v, want changed %v", tc.given, m, tc.changed)
		}
		if err := s.Authenticate(ctx, store.ManagementTenant, "admin", tc.valid); err != nil {
			t.Errorf("after EnsureManagement(%q): %q refused: %v", tc.given, tc.valid, err)
		}
	}
	if err := s.Authenticate(ctx, store.ManagementTenant, "admin", "first-Pass-1!"); !errors.Is(err, store.ErrUnauthorized) {
		t.Errorf("the replaced password still works: %v", err)
	}
}

func testPostOperationsPerTenant(t *testing.T, s store.Engine) {
	if got := must(s.PostOperations(ctx, "t1")); len(got) != 0 {
		t.Fatalf("before any PUT: %q", got)
	}
	want := []string{"read /3/0", "observe /3303/0/5700", "read /3/0"}
	check(t, s.SetPostOperations(ctx, "t1", want))
	// twice: an engine may answer the second from a cache
	for range 2 {
		if got := must(s.PostOperations(ctx, "t1")); !slices.Equal(got, want) {
			t.Fatalf("t1: %q, want %q", got, want)
		}
	}
	if got := must(s.PostOperations(ctx, "t2")); len(got) != 0 {
		t.Fatalf("t2 sees t1's commands: %q", got)
	}
	check(t, s.SetPostOperations(ctx, "t1", []string{"discover /3"}))
	if got := must(s.PostOperations(ctx, "t1")); !slices.Equal(got, []string{"discover /3"}) {
		t.Fatalf("after replace: %q", got)
	}
	check(t, s.SetPostOperations(ctx, "t1", nil))
	if got := must(s.PostOperations(ctx, "t1")); len(got) != 0 {
		t.Fatalf("after removing: %q", got)
	}
}

func testPostOperationsBounds(t *testing.T, s store.Engine) {
	check(t, s.SetPostOperations(ctx, "t1", []string{"read /3/0"}))
	tests := []struct {
		name string
		cmds []string
	}{
		{"too many", slices.Repeat([]string{"read /3/0"}, store.MaxPostOperations+1)},
		{"empty command", []string{"read /3/0", ""}},
		{"overlong command", []string{"write /3/0/14 " + strings.Repeat("x", store.MaxPostOperationLength)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SetPostOperations(ctx, "t1", tt.cmds); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if got := must(s.PostOperations(ctx, "t1")); !slices.Equal(got, []string{"read /3/0"}) {
				t.Fatalf("a refused list changed the stored one: %q", got)
			}
		})
	}
	check(t, s.SetPostOperations(ctx, "t1", slices.Repeat([]string{"read /3/0"}, store.MaxPostOperations)))
}
