package browsertest_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// call runs an exported function of a console module in the page, as
// libCall does, and decodes its answer into out.
func call(b *browsertest.Browser, module, fn string, out any, args ...any) {
	b.T.Helper()
	res := libCall(b, module, fn, args...)
	if err := json.Unmarshal([]byte(res), out); err != nil {
		b.T.Fatalf("%s %s: decode %.200s: %v", module, fn, res, err)
	}
}

// The chart's and the notifications' pure parts, case by case, run where
// they run for users: in the browser.
func TestChartAndRealtimeHelpers(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/login")
	b.WaitVisible("#main form")

	t.Run("niceTicks", func(t *testing.T) {
		for _, c := range []struct {
			name     string
			min, max float64
			count    int
			want     []float64
		}{
			{"round", 0, 10, 5, []float64{0, 2, 4, 6, 8, 10}},
			{"widened to round ends", 21.3, 23.8, 5, []float64{21, 21.5, 22, 22.5, 23, 23.5, 24}},
			{"negative", -7, 3, 4, []float64{-10, -5, 0, 5}},
			{"one value", 5, 5, 4, []float64{4.5, 5, 5.5}},
			{"small steps", 0.001, 0.004, 3, []float64{0.001, 0.002, 0.003, 0.004}},
		} {
			var got struct{ Ticks []float64 }
			call(b, "lib/chart.js", "niceTicks", &got, c.min, c.max, c.count)
			if fmt.Sprint(got.Ticks) != fmt.Sprint(c.want) {
				t.Errorf("%s: niceTicks(%v, %v, %d) = %v, want %v", c.name, c.min, c.max, c.count, got.Ticks, c.want)
			}
		}
	})

	t.Run("timeTicks", func(t *testing.T) {
		const minute, hour = 60e3, 3600e3
		base := 1.7e12 - float64(int64(1.7e12)%int64(24*hour)) // a UTC midnight
		for _, c := range []struct {
			name     string
			from, to float64
			count    int
			step     float64
			first    float64
			n        int
		}{
			{"an hour in 10 min", base + 5*minute, base + hour + 5*minute, 6, 10 * minute, base + 10*minute, 6},
			{"a day in 6 h", base, base + 24*hour, 4, 6 * hour, base, 5},
			{"seconds", base + 500, base + 10500, 5, 2000, base + 2000, 5},
		} {
			var got struct {
				Step  float64
				Ticks []float64
			}
			call(b, "lib/chart.js", "timeTicks", &got, c.from, c.to, c.count, 0)
			if got.Step != c.step || len(got.Ticks) != c.n || got.Ticks[0] != c.first {
				t.Errorf("%s: step %v, %d ticks from %v; want step %v, %d ticks from %v", c.name, got.Step, len(got.Ticks), got.Ticks, c.step, c.n, c.first)
			}
		}
	})

	t.Run("columns", func(t *testing.T) {
		// 1000 points over 100 columns: at most four per column, and
		// the peak (a single high value) is kept
		pts := make([][2]float64, 1000)
		for i := range pts {
			pts[i] = [2]float64{float64(i), 1}
		}
		pts[537][1] = 99
		var got [][2]float64
		call(b, "lib/chart.js", "columns", &got, pts, 0, 1000, 100)
		if len(got) > 400 || len(got) < 100 {
			t.Errorf("%d points drawn for 100 columns, want 100 to 400", len(got))
		}
		peak := false
		for i, p := range got {
			peak = peak || p[1] == 99
			if i > 0 && p[0] < got[i-1][0] {
				t.Fatalf("points out of time order at %d: %v", i, got[i-1:i+1])
			}
		}
		if !peak {
			t.Error("the peak of the series is not drawn")
		}
		call(b, "lib/chart.js", "columns", &got, pts[:150], 0, 1000, 100)
		if len(got) != 150 {
			t.Errorf("150 points in 100 columns: %d drawn, want all", len(got))
		}
	})

	t.Run("matches", func(t *testing.T) {
		for _, c := range []struct {
			pattern, channel string
			want             bool
		}{
			{"/measurements/12", "/measurements/12", true},
			{"/measurements/*", "/measurements/12", true},
			{"/measurements/*", "/alarms/12", false},
			{"/measurements/*", "/measurements/12/x", false},
			{"/measurements/12", "/measurements/1", false},
			{"/**", "/alarms/12", true},
			{"/alarms/**", "/alarms", false},
		} {
			var got bool
			call(b, "lib/realtime.js", "matches", &got, c.pattern, c.channel)
			if got != c.want {
				t.Errorf("matches(%q, %q) = %v, want %v", c.pattern, c.channel, got, c.want)
			}
		}
	})

	t.Run("newestFirst", func(t *testing.T) {
		// seven operations listed oldest first, read newest first in
		// pages of three: the last page is the short one
		var got [][]int
		b.Eval(`(async () => {
			const base = document.querySelector('link[rel=stylesheet]').href.replace(/style\.css$/, '');
			const { newestFirst } = await import(base + 'lib/livelist.js');
			const all = [1, 2, 3, 4, 5, 6, 7];
			const list = async (path, coll, { pageSize, currentPage }) => ({
				items: all.slice((currentPage - 1) * pageSize, currentPage * pageSize), totalElements: all.length });
			const pages = [];
			for (let n = 1; n <= 3; n++) pages.push((await newestFirst(list, '/x', 'x', { currentPage: n, pageSize: 3 })).items);
			return pages;
		})()`, &got)
		if fmt.Sprint(got) != "[[7 6 5] [4 3 2] [1]]" {
			t.Errorf("pages newest first: %v, want [[7 6 5] [4 3 2] [1]]", got)
		}
	})

	t.Run("valuesOf", func(t *testing.T) {
		var got []struct {
			Fragment, Series, Unit string
			Value                  float64
		}
		call(b, "pages/device/measurements.js", "valuesOf", &got, map[string]any{
			"id": "1", "time": "2026-12-06T05:12:00.000Z", "type": "c8y_Temperature", "source": map[string]any{"id": "4"},
			"c8y_Temperature": map[string]any{"T": map[string]any{"value": 21.5, "unit": "C"}},
			"c8y_Note":        map[string]any{"text": "not a series"},
		})
		if len(got) != 1 || got[0].Fragment != "c8y_Temperature" || got[0].Series != "T" || got[0].Value != 21.5 || got[0].Unit != "C" {
			t.Errorf("valuesOf = %+v, want the one series c8y_Temperature.T 21.5 C", got)
		}
	})
}
