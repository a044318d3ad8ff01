package browsertest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// seedDevices stores n devices shaped as registered LwM2M devices, in
// the management tenant, straight through the store (the API has no
// bulk create of managed objects, and the list is what is measured).
func seedDevices(b *testing.B, a *browsertest.Agent, n int) {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("dev-%05d", i)
				status := "AVAILABLE"
				if i%7 == 0 {
					status = "UNAVAILABLE"
				}
				seen := now.Add(-time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000Z")
				_, err := a.App.Store.CreateManagedObject(ctx, "management", store.ManagedObject{Name: name, Type: "c8y_lwm2m", Fragments: map[string]any{
					"c8y_IsDevice":     map[string]any{},
					"c8y_Availability": map[string]any{"status": status, "lastMessage": seen},
					"c8y_Connection":   map[string]any{"status": "CONNECTED"},
					"lwm2m": map[string]any{"endpoint": name, "lwm2mVersion": "1.1", "lifetime": 300, "bindingMode": "U",
						"lastUpdate": seen, "objects": []any{"/1/0", "/3/0", "/4/0", "/5/0", "/6/0", "/3303/0"}},
					"c8y_Hardware": map[string]any{"model": "meter", "serialNumber": name, "revision": "1.0"},
				}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("seed devices: %v", err)
	}
}

// BenchmarkDeviceList measures the device list of 10,000 devices, page
// by page: the API's answer alone (api-*, pages spread over the whole
// list), and in the browser from the click on "Next" to the new page laid
// out and painted (browser-*, from the middle of the list on), with the
// API request's share of it. docs/performance.md has the figures.
//
//	go test -run '^$' -bench DeviceList -benchtime 200x ./agent/console/browsertest/
func BenchmarkDeviceList(b *testing.B) {
	const devices = 10000
	a := browsertest.StartAgent(b)
	start := time.Now()
	seedDevices(b, a, devices)
	b.Logf("stored %d devices in %s", devices, time.Since(start).Round(time.Millisecond))

	for _, size := range []int{25, 100} {
		for _, search := range []string{"", "dev-0"} {
			name := fmt.Sprintf("api-size%d", size)
			if search != "" {
				name += "-search"
			}
			b.Run(name, func(b *testing.B) {
				pages := devices / size
				durs := make([]time.Duration, 0, b.N)
				for i := 0; b.Loop(); i++ {
					q := url.Values{"pageSize": {fmt.Sprint(size)}, "currentPage": {fmt.Sprint(1 + (i*37)%pages)}, "query": {searchQuery(search)}}
					req, _ := http.NewRequest("GET", a.URL+"/inventory/managedObjects?"+q.Encode(), nil)
					req.SetBasicAuth("management/admin", browsertest.AdminPassword)
					t0 := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					durs = append(durs, time.Since(t0))
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("HTTP %d", resp.StatusCode)
					}
				}
				report(b, durs, "")
			})
		}
	}

	br := browsertest.NewBrowser(b, a)
	br.Login("management", "admin", browsertest.AdminPassword)
	for _, size := range []int{25, 100} {
		b.Run(fmt.Sprintf("browser-size%d", size), func(b *testing.B) {
			// from the middle on: deep pages cost the store more
			br.Go(fmt.Sprintf("/devices?size=%d&page=%d", size, devices/size/2))
			br.WaitText("#main .pager-info", fmt.Sprintf("of %d", devices/size))
			var pageDurs, apiDurs []time.Duration
			for b.Loop() {
				// one click on Next (or back to the first page at the
				// end), timed to the frame after the new rows are shown
				var res struct{ Page, API float64 }
				br.Eval(`(async () => {
					performance.clearResourceTimings();
					const info = () => document.querySelector('#main .pager-info').textContent;
					const before = info();
					const next = document.querySelector('#main button[rel=next]');
					const t0 = performance.now();
					(next.disabled ? document.querySelector('#main button[aria-label="First page"]') : next).click();
					await new Promise((resolve) => {
						const check = () => { if (info() !== before) { obs.disconnect(); resolve(); } };
						const obs = new MutationObserver(check);
						obs.observe(document.querySelector('#main'), {childList: true, subtree: true, characterData: true});
						check();
					});
					await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
					const page = performance.now() - t0;
					const req = performance.getEntriesByType('resource').filter((e) => e.name.includes('/inventory/managedObjects')).pop();
					return {page, api: req ? req.duration : -1};
				})()`, &res)
				pageDurs = append(pageDurs, time.Duration(res.Page*float64(time.Millisecond)))
				apiDurs = append(apiDurs, time.Duration(res.API*float64(time.Millisecond)))
			}
			report(b, pageDurs, "")
			report(b, apiDurs, "api-")
		})
	}
}

func searchQuery(text string) string {
	if text == "" {
		return "$filter=(has(c8y_IsDevice))"
	}
	v := "'*" + text + "*'"
	return "$filter=(has(c8y_IsDevice) and (name eq " + v + " or lwm2m.endpoint eq " + v + " or type eq " + v + "))"
}

// report adds the median, p95 and maximum of durs, in milliseconds.
func report(b *testing.B, durs []time.Duration, prefix string) {
	if len(durs) == 0 {
		return
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(durs[len(durs)/2]), prefix+"p50-ms")
	b.ReportMetric(ms(durs[len(durs)*95/100]), prefix+"p95-ms")
	b.ReportMetric(ms(durs[len(durs)-1]), prefix+"max-ms")
}
