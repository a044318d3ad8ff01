package browsertest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// Binaries: a file over the agent's limit is refused with the API's
// message where it was uploaded; one within it is listed, downloads with
// its bytes, and is deleted after a confirmation. A firmware update of a
// simulated device from a URL is followed to SUCCESSFUL.
func TestBinaries(t *testing.T) {
	const limit = 4096
	a := browsertest.StartAgent(t, func(c *config.Config) { c.MaxBinarySize = limit })
	sim := a.Simulate(1, "fw", nil)
	fw := bytes.Repeat([]byte("firmware "), 100)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(fw)
	}))
	t.Cleanup(files.Close)

	dir := t.TempDir()
	big, small := filepath.Join(dir, "too-big.bin"), filepath.Join(dir, "sensor_2.1.0.bin")
	if err := os.WriteFile(big, bytes.Repeat([]byte{0xAB}, 2*limit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, fw, 0o644); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()

	b := browsertest.AdminBrowser(t, a, "")
	b.Go("/binaries")
	b.WaitText("#main table.grid", "No binaries yet")
	b.Do("choose a file over the limit", chromedp.SetUploadFiles(chromedp.CSS(`#main input[name=file]`), []string{big}))
	b.ClickText("#main button", "Upload")
	b.WaitText("#main .form-errors [role=alert]", "a binary may hold at most 4096 bytes")

	b.Do("choose a file", chromedp.SetUploadFiles(chromedp.CSS(`#main input[name=file]`), []string{small}))
	b.ClickText("#main button", "Upload")
	b.WaitText("#main .binaries tbody tr.fresh", "sensor_2.1.0.bin")
	b.WaitGone("#main .form-errors [role=alert]")
	if got := b.Text("#main .binaries tbody tr.fresh"); !bytes.Contains([]byte(got), []byte("900 bytes")) {
		t.Errorf("the listed binary: %q, want its size 900 bytes", got)
	}

	b.Do("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		})
		return err
	}))
	b.ClickText("#main .binaries button", "Download")
	browsertest.Eventually(t, browsertest.Wait, func() error {
		got, err := os.ReadFile(filepath.Join(downloads, "sensor_2.1.0.bin"))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, fw) {
			return errorf("downloaded %d bytes, want the %d uploaded", len(got), len(fw))
		}
		return nil
	})

	// the firmware update form: the device, and a URL the device reaches
	id := a.DeviceID(sim.Endpoints()[0])
	b.WaitFor("the simulated device among the choices", `[...document.querySelectorAll('#main select[name=deviceId] option')].some((o) => o.value === `+"'"+id+"'"+`)`)
	b.Select("#main select[name=deviceId]", id)
	b.Fill("#main input[name=name]", "sensor")
	b.Fill("#main input[name=version]", "2.1.0")
	b.Fill("#main input[name=url]", files.URL+"/fw/sensor_2.1.0.bin")
	b.ClickText("#main button", "Update firmware")
	b.WaitText("#main .result-slot .callout", "SUCCESSFUL")
	b.Screenshot("binaries")

	b.ClickText("#main .binaries button", "Delete")
	b.ClickText("dialog button", "Delete")
	b.WaitText("#main table.grid", "No binaries yet")
	var list struct{ ManagedObjects []any }
	if code := a.Admin("GET", "/inventory/binaries", nil, &list); code != http.StatusOK || len(list.ManagedObjects) != 0 {
		t.Fatalf("after the delete: HTTP %d, %d binaries", code, len(list.ManagedObjects))
	}
}
