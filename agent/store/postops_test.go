package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func TestPostOperationsPerTenant(t *testing.T) {
	s := storetest.OpenTest(t)
	if got := must(s.PostOperations(ctx, "t1")); len(got) != 0 {
		t.Fatalf("before any PUT: %q", got)
	}
	want := []string{"read /3/0", "observe /3303/0/5700", "read /3/0"}
	check(t, s.SetPostOperations(ctx, "t1", want))
	// read twice: from the database, then from the cache
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

func TestPostOperationsBounds(t *testing.T) {
	s := storetest.OpenTest(t)
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

func TestSerializationSurvivesNewParameters(t *testing.T) {
	s := storetest.OpenTest(t)
	check(t, s.SaveDeviceRegistration(ctx, "t1", "10", store.DeviceRegistration{
		Params: map[string]any{"endpointId": "ep-10"}, PSKKey: []byte{1, 2},
	}))
	check(t, s.SetDeviceSerialization(ctx, "t1", "10", "TLV"))
	// a PUT of the bootstrap parameters or a re-import replaces them
	check(t, s.SaveDeviceRegistration(ctx, "t1", "10", store.DeviceRegistration{
		Params: map[string]any{"endpointId": "ep-10", "lwm2mRequestTimeout": int64(5000)},
	}))
	r := must(s.DeviceRegistrationOf(ctx, "t1", "10"))
	if r.Serialization != "TLV" || len(r.PSKKey) != 0 || r.Params["lwm2mRequestTimeout"] == nil {
		t.Fatalf("after new parameters: serialization %q, psk key %x, params %v", r.Serialization, r.PSKKey, r.Params)
	}
	check(t, s.SetDeviceSerialization(ctx, "t1", "10", ""))
	if r := must(s.DeviceRegistrationOf(ctx, "t1", "10")); r.Serialization != "" || r.Params["endpointId"] != "ep-10" {
		t.Fatalf("after removing: %+v", r)
	}

	// a device without parameters keeps only its serialization, and still
	// has no registration parameters
	check(t, s.SetDeviceSerialization(ctx, "t1", "20", "SENML_JSON"))
	if _, err := s.DeviceRegistrationOf(ctx, "t1", "20"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registration of a device with only a serialization: %v, want not found", err)
	}
	if r := must(s.DeviceSettings(ctx, "t1", "20")); r.Serialization != "SENML_JSON" {
		t.Fatalf("settings: %+v", r)
	}
	if _, err := s.DeviceSettings(ctx, "t2", "20"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's device: %v", err)
	}
}
