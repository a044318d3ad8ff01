package browsertest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// UploadFiles gives a file input the files as a user's choice does: the
// page hears "change" and reads the file's contents.
func TestHarnessUploadFiles(t *testing.T) {
	a := browsertest.StartAgent(t)
	b := browsertest.NewBrowser(t, a)
	b.Open("/login")
	b.WaitVisible("#main form")
	p := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(p, []byte("ID;CREDENTIALS\nsensor-1;x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Eval(`(() => {
		const i = document.createElement('input');
		i.type = 'file';
		i.id = 'upload-probe';
		i.addEventListener('change', async () => { document.body.dataset.uploaded = i.files[0].name + ':' + (await i.files[0].text()); });
		document.body.append(i);
	})()`, nil)
	b.UploadFiles("#upload-probe", p)
	b.WaitFor("the file read by the page", `document.body.dataset.uploaded === "devices.csv:ID;CREDENTIALS\nsensor-1;x\n"`)
}
