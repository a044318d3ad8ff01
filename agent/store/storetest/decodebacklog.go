package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var decodeBacklogCases = []suiteCase{
	{"AppendTakeFinish", testDecodeAppendTakeFinish},
	{"OrderPerDevice", testDecodeOrderPerDevice},
	{"RetryKeepsTheHead", testDecodeRetryKeepsTheHead},
	{"Bound", testDecodeBound},
	{"TenantIsolation", testDecodeTenantIsolation},
	{"Expired", testDecodeExpired},
	{"Resume", testDecodeResume},
	{"LeaseRunsOut", testDecodeLeaseRunsOut},
	{"Stats", testDecodeStats},
	{"ConcurrentTakers", testDecodeConcurrentTakers},
}

const lease = time.Minute

// decodeValue is the i-th value of a device for decoder, its number in
// its one byte.
func decodeValue(tenant, device, decoder string, i int) store.DecodeValue {
	return store.DecodeValue{
		Tenant: tenant, Device: device, Endpoint: "ep-" + device, Path: "/10268/0/6029", Decoder: decoder,
		Type: "OPAQUE", Value: []byte{byte(i)}, Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC).Add(time.Duration(i) * time.Second),
	}
}

func decodeValues(tenant, device, decoder string, from, n int) []store.DecodeValue {
	out := make([]store.DecodeValue, n)
	for i := range out {
		out[i] = decodeValue(tenant, device, decoder, from+i)
	}
	return out
}

// numbers are the values' numbers, as devices/number.
func numbers(vals []store.DecodeValue) []string {
	var out []string
	for _, v := range vals {
		out = append(out, fmt.Sprintf("%s/%d", v.Device, v.Value[0]))
	}
	return out
}

func appendAll(t *testing.T, s store.Engine, tenant string, vals ...store.DecodeValue) {
	t.Helper()
	refused, err := s.AppendDecodes(ctx, tenant, vals, 1000)
	if err != nil || refused != 0 {
		t.Fatalf("append %d values: %d refused, %v", len(vals), refused, err)
	}
}

func take(t *testing.T, s store.Engine, decoder string, now time.Time, limit int) []store.DecodeValue {
	t.Helper()
	vals, err := s.TakeDecodes(ctx, decoder, now, lease, limit)
	if err != nil {
		t.Fatalf("take: %v", err)
	}
	return vals
}

func nowMilli() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// A value comes back as it was appended, with its place, and once
// finished it is gone; a taken group is not taken again meanwhile.
func testDecodeAppendTakeFinish(t *testing.T, s store.Engine) {
	in := decodeValue("acme", "7", "frame", 1)
	in.Argument, in.Action = "v2", true
	in.Queued = nowMilli().Add(-time.Minute)
	appendAll(t, s, "acme", in)
	got := take(t, s, "frame", time.Now(), 10)
	if len(got) != 1 {
		t.Fatalf("took %d values, want 1", len(got))
	}
	g := got[0]
	if g.Seq == 0 || g.Tenant != in.Tenant || g.Device != in.Device || g.Endpoint != in.Endpoint || g.Path != in.Path ||
		g.Decoder != in.Decoder || g.Argument != in.Argument || !g.Action || g.Type != in.Type || !bytes.Equal(g.Value, in.Value) ||
		!g.Time.Equal(in.Time) || !g.Queued.Equal(in.Queued) || g.Attempts != 0 {
		t.Errorf("took %+v, appended %+v", g, in)
	}
	if again := take(t, s, "frame", time.Now(), 10); len(again) != 0 {
		t.Errorf("a leased group gave %v again", numbers(again))
	}
	if other := take(t, s, "cbor", time.Now(), 10); len(other) != 0 {
		t.Errorf("another decoder got %v", numbers(other))
	}
	check(t, s.SettleDecodes(ctx, got, nil, time.Now(), time.Now()))
	if again := take(t, s, "frame", time.Now(), 10); len(again) != 0 {
		t.Errorf("a finished value came back: %v", numbers(again))
	}
	if st := must(s.DecodeBacklogStats(ctx)); len(st) != 0 {
		t.Errorf("statistics of an empty backlog: %+v", st)
	}
	// a value without bytes is kept as one
	empty := decodeValue("acme", "7", "frame", 0)
	empty.Value = nil
	appendAll(t, s, "acme", empty)
	if got := take(t, s, "frame", time.Now(), 10); len(got) != 1 || len(got[0].Value) != 0 {
		t.Errorf("an empty value came back as %+v", got)
	}
}

// A device's values for a decoder are taken in the order they came, the
// next only once the one before is finished; other devices' values do
// not wait for them, and a group served goes behind the others.
func testDecodeOrderPerDevice(t *testing.T, s store.Engine) {
	appendAll(t, s, "acme", decodeValues("acme", "1", "frame", 0, 3)...)
	appendAll(t, s, "acme", decodeValues("acme", "2", "frame", 0, 2)...)
	first := take(t, s, "frame", time.Now(), 1)
	if !slices.Equal(numbers(first), []string{"1/0"}) {
		t.Fatalf("first take %v, want the head of the device that came first", numbers(first))
	}
	second := take(t, s, "frame", time.Now(), 10)
	if !slices.Equal(numbers(second), []string{"2/0", "2/1"}) {
		t.Fatalf("second take %v, want the other device's values, in order, and none of the leased device", numbers(second))
	}
	// device 2 is served first, then device 1: device 1 is due again
	// last, and device 2's new value waits behind its older one
	now := time.Now()
	check(t, s.SettleDecodes(ctx, second[:1], nil, now.Add(time.Second), now.Add(time.Second)))
	check(t, s.SettleDecodes(ctx, first, nil, now.Add(2*time.Second), now.Add(2*time.Second)))
	appendAll(t, s, "acme", decodeValue("acme", "2", "frame", 2))
	third := take(t, s, "frame", now.Add(3*time.Second), 10)
	if !slices.Equal(numbers(third), []string{"2/1", "2/2", "1/1", "1/2"}) {
		t.Fatalf("third take %v, want device 2's rest, then device 1's", numbers(third))
	}
	check(t, s.SettleDecodes(ctx, third, nil, time.Now(), time.Now()))
	if st := must(s.DecodeBacklogStats(ctx)); len(st) != 0 {
		t.Errorf("statistics after everything was finished: %+v", st)
	}
}

// A retried value stays at the head of its group, which is due again
// only at the next try; values that come meanwhile wait behind it.
func testDecodeRetryKeepsTheHead(t *testing.T, s store.Engine) {
	appendAll(t, s, "acme", decodeValues("acme", "1", "frame", 0, 2)...)
	now := time.Now()
	got := take(t, s, "frame", now, 1)
	next := now.Add(time.Hour)
	check(t, s.SettleDecodes(ctx, nil, got, time.Now(), next))
	appendAll(t, s, "acme", decodeValue("acme", "1", "frame", 2))
	if early := take(t, s, "frame", now.Add(time.Minute), 10); len(early) != 0 {
		t.Fatalf("a group waiting for its retry gave %v", numbers(early))
	}
	due := take(t, s, "frame", next.Add(time.Millisecond), 10)
	if !slices.Equal(numbers(due), []string{"1/0", "1/1", "1/2"}) {
		t.Fatalf("at the retry: %v, want every value in order", numbers(due))
	}
	if due[0].Attempts != 1 || due[1].Attempts != 0 {
		t.Errorf("attempts %d and %d, want 1 for the retried value and 0 for the next", due[0].Attempts, due[1].Attempts)
	}
	// the head done, the rest to retry: one settlement
	later := next.Add(time.Hour)
	check(t, s.SettleDecodes(ctx, due[:1], due[1:], next, later))
	if early := take(t, s, "frame", later.Add(-time.Second), 10); len(early) != 0 {
		t.Fatalf("before the second retry: %v", numbers(early))
	}
	rest := take(t, s, "frame", later, 10)
	if !slices.Equal(numbers(rest), []string{"1/1", "1/2"}) || rest[0].Attempts != 1 || rest[1].Attempts != 1 {
		t.Fatalf("at the second retry: %+v, want the two values retried once each", rest)
	}
	if st := must(s.DecodeBacklogStats(ctx)); len(st) != 1 || st[0].Waiting != 2 {
		t.Errorf("statistics %+v, want 2 values waiting", st)
	}
}

// A tenant keeps at most its bound of values waiting: the last ones of
// an append past it are refused, and finished values make room. Another
// tenant's values do not count.
func testDecodeBound(t *testing.T, s store.Engine) {
	refused, err := s.AppendDecodes(ctx, "a", decodeValues("a", "1", "frame", 0, 5), 3)
	if err != nil || refused != 2 {
		t.Fatalf("5 values under a bound of 3: %d refused, %v; want 2", refused, err)
	}
	if refused, err := s.AppendDecodes(ctx, "b", decodeValues("b", "1", "frame", 0, 3), 3); err != nil || refused != 0 {
		t.Fatalf("another tenant's values: %d refused, %v; want none", refused, err)
	}
	if refused, err := s.AppendDecodes(ctx, "a", decodeValues("a", "2", "frame", 0, 1), 3); err != nil || refused != 1 {
		t.Fatalf("a value past the bound: %d refused, %v; want 1", refused, err)
	}
	got := take(t, s, "frame", time.Now(), 10)
	var ofA []store.DecodeValue
	for _, v := range got {
		if v.Tenant == "a" {
			ofA = append(ofA, v)
		}
	}
	if !slices.Equal(numbers(ofA), []string{"1/0", "1/1", "1/2"}) {
		t.Fatalf("tenant a's values %v, want the first three", numbers(ofA))
	}
	check(t, s.SettleDecodes(ctx, ofA[:2], nil, time.Now(), time.Now()))
	if refused, err := s.AppendDecodes(ctx, "a", decodeValues("a", "2", "frame", 0, 3), 3); err != nil || refused != 1 {
		t.Fatalf("3 values with room for 2: %d refused, %v; want 1", refused, err)
	}
	// finishing twice frees the room once
	check(t, s.SettleDecodes(ctx, ofA[:2], nil, time.Now(), time.Now()))
	if refused, err := s.AppendDecodes(ctx, "a", decodeValues("a", "3", "frame", 0, 1), 3); err != nil || refused != 1 {
		t.Fatalf("a value into a full backlog after a repeated finish: %d refused, %v; want 1", refused, err)
	}
	if _, err := s.AppendDecodes(ctx, "a", decodeValues("b", "1", "frame", 0, 1), 3); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a value of tenant b appended for a: %v, want ErrInvalid", err)
	}
	if _, err := s.AppendDecodes(ctx, "a", decodeValues("a", "1", "", 0, 1), 3); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a value without a decoder: %v, want ErrInvalid", err)
	}
}

// Two tenants' devices of the same id are two groups: one leased does
// not hold the other back, and finishing one tenant's value leaves the
// other's.
func testDecodeTenantIsolation(t *testing.T, s store.Engine) {
	appendAll(t, s, "a", decodeValues("a", "7", "frame", 0, 2)...)
	appendAll(t, s, "b", decodeValues("b", "7", "frame", 0, 2)...)
	first := take(t, s, "frame", time.Now(), 1)
	second := take(t, s, "frame", time.Now(), 10)
	if len(first) != 1 || len(second) != 2 || first[0].Tenant == second[0].Tenant || second[0].Tenant != second[1].Tenant {
		t.Fatalf("takes %+v and %+v, want one tenant's head, then the other tenant's values", first, second)
	}
	// a's value, finished as b's, is left as it is
	wrong := first[0]
	wrong.Tenant = second[0].Tenant
	check(t, s.SettleDecodes(ctx, []store.DecodeValue{wrong}, nil, time.Now(), time.Now()))
	st := must(s.DecodeBacklogStats(ctx))
	if len(st) != 1 || st[0].Waiting != 4 {
		t.Fatalf("statistics %+v after a finish naming the other tenant, want 4 values waiting", st)
	}
}

// Values queued before a time are taken for dropping, whether their
// group is due or waits for a retry, unless a taker holds their group;
// their group's other values wait until they are finished.
func testDecodeExpired(t *testing.T, s store.Engine) {
	now := nowMilli()
	old := decodeValues("acme", "1", "frame", 0, 2)
	for i := range old {
		old[i].Queued = now.Add(-2 * time.Hour)
	}
	appendAll(t, s, "acme", old...)
	appendAll(t, s, "acme", decodeValue("acme", "1", "frame", 2))
	held := decodeValue("acme", "2", "frame", 0)
	held.Queued = now.Add(-2 * time.Hour)
	appendAll(t, s, "acme", held)
	waiting := decodeValue("acme", "3", "frame", 0)
	waiting.Queued = now.Add(-2 * time.Hour)
	appendAll(t, s, "acme", waiting)
	appendAll(t, s, "acme", decodeValue("acme", "4", "cbor", 0))

	// device 2's group is leased, device 3's waits for a retry
	var leased []store.DecodeValue
	for _, v := range take(t, s, "frame", time.Now(), 10) {
		switch v.Device {
		case "2":
			leased = append(leased, v)
		case "3":
			check(t, s.SettleDecodes(ctx, nil, []store.DecodeValue{v}, time.Now(), now.Add(time.Hour)))
		default:
			check(t, s.SettleDecodes(ctx, nil, []store.DecodeValue{v}, time.Now(), now))
		}
	}
	if len(leased) != 1 {
		t.Fatalf("leased %v, want device 2's value", numbers(leased))
	}
	expired, err := s.TakeExpiredDecodes(ctx, "frame", now.Add(-time.Hour), time.Now(), lease, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(numbers(expired), []string{"1/0", "1/1", "3/0"}) {
		t.Fatalf("expired %v, want device 1's two old values and device 3's, not the leased one", numbers(expired))
	}
	if rest := take(t, s, "frame", time.Now().Add(time.Second), 10); len(rest) != 0 {
		t.Fatalf("took %v while their groups were taken for dropping", numbers(rest))
	}
	check(t, s.SettleDecodes(ctx, expired, nil, time.Now(), time.Now()))
	if rest := take(t, s, "frame", time.Now().Add(time.Second), 10); !slices.Equal(numbers(rest), []string{"1/2"}) {
		t.Fatalf("after the drop: %v, want device 1's new value", numbers(rest))
	}
	if none, err := s.TakeExpiredDecodes(ctx, "frame", now.Add(-time.Hour), time.Now(), lease, 10); err != nil || len(none) != 0 {
		t.Errorf("expired after the drop: %v, %v", numbers(none), err)
	}
}

// Resuming makes the groups waiting for a retry due at once, only those
// of the decoder named (every decoder's for ""), and leaves leased ones.
func testDecodeResume(t *testing.T, s store.Engine) {
	appendAll(t, s, "acme", decodeValue("acme", "1", "frame", 0), decodeValue("acme", "2", "cbor", 0))
	now := time.Now()
	check(t, s.SettleDecodes(ctx, nil, take(t, s, "frame", now, 10), time.Now(), now.Add(time.Hour)))
	check(t, s.SettleDecodes(ctx, nil, take(t, s, "cbor", now, 10), time.Now(), now.Add(time.Hour)))
	check(t, s.ResumeDecodes(ctx, "cbor", time.Now()))
	if got := take(t, s, "frame", time.Now(), 10); len(got) != 0 {
		t.Fatalf("resuming cbor made frame's %v due", numbers(got))
	}
	leased := take(t, s, "cbor", time.Now(), 10)
	if len(leased) != 1 {
		t.Fatalf("resumed cbor gave %v, want its value", numbers(leased))
	}
	check(t, s.ResumeDecodes(ctx, "", time.Now()))
	if got := take(t, s, "cbor", time.Now(), 10); len(got) != 0 {
		t.Fatalf("resuming took back a leased group: %v", numbers(got))
	}
	if got := take(t, s, "frame", time.Now(), 10); len(got) != 1 {
		t.Fatalf("resuming every decoder gave frame %v, want its value", numbers(got))
	}
}

// A lease that is not ended runs out: the taker died, and another takes
// the values.
func testDecodeLeaseRunsOut(t *testing.T, s store.Engine) {
	appendAll(t, s, "acme", decodeValues("acme", "1", "frame", 0, 2)...)
	now := time.Now()
	if got, err := s.TakeDecodes(ctx, "frame", now, time.Second, 10); err != nil || len(got) != 2 {
		t.Fatalf("take: %v, %v", numbers(got), err)
	}
	if got := take(t, s, "frame", now.Add(500*time.Millisecond), 10); len(got) != 0 {
		t.Fatalf("taken again within the lease: %v", numbers(got))
	}
	if got := take(t, s, "frame", now.Add(2*time.Second), 10); !slices.Equal(numbers(got), []string{"1/0", "1/1"}) {
		t.Fatalf("after the lease: %v, want both values in order", numbers(got))
	}
}

// The statistics count every value of each decoder, taken ones too,
// with the oldest one's time.
func testDecodeStats(t *testing.T, s store.Engine) {
	base := nowMilli().Add(-time.Hour)
	vals := append(decodeValues("a", "1", "frame", 0, 3), decodeValues("a", "2", "cbor", 0, 1)...)
	for i := range vals {
		vals[i].Queued = base.Add(time.Duration(i) * time.Minute)
	}
	appendAll(t, s, "a", vals...)
	late := decodeValue("b", "1", "frame", 0)
	late.Queued = base.Add(-time.Minute)
	appendAll(t, s, "b", late)
	take(t, s, "frame", time.Now(), 1)
	got := must(s.DecodeBacklogStats(ctx))
	want := []store.DecodeBacklogStat{
		{Decoder: "cbor", Waiting: 1, Oldest: base.Add(3 * time.Minute)},
		{Decoder: "frame", Waiting: 4, Oldest: base.Add(-time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("statistics %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Decoder != want[i].Decoder || got[i].Waiting != want[i].Waiting || !got[i].Oldest.Equal(want[i].Oldest) {
			t.Errorf("statistics %+v, want %+v", got[i], want[i])
		}
	}
}

// Takers at work at once never get the same value, and each device's
// values are taken in the order they came.
func testDecodeConcurrentTakers(t *testing.T, s store.Engine) {
	const devices, each, takers = 6, 12, 4
	for i := range each {
		for d := range devices {
			appendAll(t, s, "acme", decodeValue("acme", fmt.Sprint(d), "frame", i))
		}
	}
	var (
		mu      sync.Mutex
		taken   = map[int64]int{}
		byDev   = map[string][]int{}
		wg      sync.WaitGroup
		errs    = make(chan error, takers)
		pending = devices * each
	)
	for range takers {
		wg.Go(func() {
			for {
				got, err := s.TakeDecodes(ctx, "frame", time.Now(), lease, 5)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, v := range got {
					taken[v.Seq]++
					byDev[v.Device] = append(byDev[v.Device], int(v.Value[0]))
				}
				pending -= len(got)
				left := pending
				mu.Unlock()
				if err := s.SettleDecodes(ctx, got, nil, time.Now(), time.Now()); err != nil {
					errs <- err
					return
				}
				if left <= 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(taken) != devices*each {
		t.Errorf("%d values taken, want %d", len(taken), devices*each)
	}
	for seq, n := range taken {
		if n != 1 {
			t.Errorf("value %d taken %d times", seq, n)
		}
	}
	for d, nums := range byDev {
		if !slices.IsSorted(nums) || len(nums) != each {
			t.Errorf("device %s's values taken in the order %v", d, nums)
		}
	}
}
