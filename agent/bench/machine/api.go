package machine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Call sends one request to the agent's API at base as management/admin,
// with body as JSON, and decodes the answer into out unless out is nil.
// An answer of 300 or more is an error that carries its body.
func Call(ctx context.Context, c *http.Client, base, password, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	return Send(ctx, c, base, password, method, path, "application/json", rd, out)
}

// Send is Call with a body of another content type (a CSV file, a
// multipart upload) read from body, which may be nil.
func Send(ctx context.Context, c *http.Client, base, password, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth("management/admin", password)
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Metric reads one unlabelled metric of the agent's /metrics at base.
func Metric(ctx context.Context, c *http.Client, base, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// Histogram is a Prometheus histogram read from /metrics: cumulative
// counts by upper bound.
type Histogram struct {
	Bounds []string // as printed, ascending, "+Inf" last
	Counts []float64
	Sum    float64
	Count  float64
}

// ReadHistogram reads the unlabelled histogram name of the agent's
// /metrics at base.
func ReadHistogram(ctx context.Context, c *http.Client, base, name string) (Histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return Histogram{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Histogram{}, err
	}
	defer resp.Body.Close()
	var h Histogram
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], name+"_bucket{le=\""):
			h.Bounds = append(h.Bounds, strings.TrimSuffix(strings.TrimPrefix(f[0], name+"_bucket{le=\""), "\"}"))
			h.Counts = append(h.Counts, v)
		case f[0] == name+"_sum":
			h.Sum = v
		case f[0] == name+"_count":
			h.Count = v
		}
	}
	if len(h.Bounds) == 0 {
		return h, fmt.Errorf("%s not on /metrics", name)
	}
	return h, sc.Err()
}

// Between is the bucket holding quantile q of what was counted since
// before, as "lower–upper s", so that a figure read from buckets shows
// its resolution.
func (h Histogram) Between(before Histogram, q float64) string {
	total := h.Count - before.Count
	lower := "0"
	for i, c := range h.Counts {
		var b float64
		if i < len(before.Counts) {
			b = before.Counts[i]
		}
		if c-b >= q*total {
			return lower + "–" + h.Bounds[i] + " s"
		}
		lower = h.Bounds[i]
	}
	return "+Inf"
}

// Quantile is the upper bound of the bucket holding quantile q of what
// was counted since before (the zero Histogram: since the start).
func (h Histogram) Quantile(before Histogram, q float64) string {
	total := h.Count - before.Count
	for i, c := range h.Counts {
		var b float64
		if i < len(before.Counts) {
			b = before.Counts[i]
		}
		if c-b >= q*total {
			return h.Bounds[i] + " s"
		}
	}
	return "+Inf"
}
