package browsertest_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// Groups and bulk operations: a group made in the console gets two
// simulated devices (found by name) and a subgroup, which is removed
// again; a bulk operation of a read command over the group shows its
// progress until both devices' operations are SUCCESSFUL; a refused bulk
// operation shows the API's reason in its form; one due tomorrow is
// canceled from the list.
func TestGroupsAndBulkOperations(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(2, "grp", nil)
	ids := []string{a.DeviceID(sim.Endpoints()[0]), a.DeviceID(sim.Endpoints()[1])}
	var empty, sub struct{ ID string }
	a.Admin("POST", "/inventory/managedObjects", map[string]any{"name": "empty", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": map[string]any{}}, &empty)
	a.Admin("POST", "/inventory/managedObjects", map[string]any{"name": "basement", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": map[string]any{}}, &sub)

	b := browsertest.AdminBrowser(t, a, "")
	b.Go("/groups")
	b.WaitVisible(`#main tr[data-group-id="` + empty.ID + `"]`)
	b.Fill("#main input[name=name]", "fleet")
	b.ClickText("#main button", "Create group")
	b.WaitText("#main h1", "fleet")
	b.WaitText("#main .members", "No members yet")
	var group string
	b.Eval(`location.hash.split('/')[2]`, &group)

	for i, id := range ids {
		b.Fill(`#main input[name="deviceId-search"]`, sim.Endpoints()[i])
		b.WaitFor("device "+id+" found by name", `[...document.querySelectorAll('#main select[name=deviceId] option')].length === 1 && document.querySelector('#main select[name=deviceId] option').value === '`+id+`'`)
		b.ClickText("#main button", "Add device")
		b.WaitVisible(`#main tr[data-member-id="` + id + `"]`)
	}
	b.WaitFor("the subgroup among the choices", `[...document.querySelectorAll('#main select[name=subgroup] option')].some((o) => o.value === '`+sub.ID+`')`)
	b.Select("#main select[name=subgroup]", sub.ID)
	b.ClickText("#main button", "Add subgroup")
	b.WaitText(`#main tr[data-member-id="`+sub.ID+`"]`, "Group")
	b.Screenshot("group")
	b.Click(`#main tr[data-member-id="` + sub.ID + `"] button`)
	b.ClickText("dialog button", "Remove")
	b.WaitGone(`#main tr[data-member-id="` + sub.ID + `"]`)
	var members struct{ References []any }
	if code := a.Admin("GET", "/inventory/managedObjects/"+group+"/childAssets", nil, &members); code != http.StatusOK || len(members.References) != 2 {
		t.Fatalf("the group's members: HTTP %d, %d, want the 2 devices", code, len(members.References))
	}

	b.ClickText("#main a", "Bulk operation for this group")
	b.WaitFor("the group chosen", `document.querySelector('#main select[name=groupId]')?.value === '`+group+`'`)
	// a group without devices: the API's reason, in the form
	b.Select("#main select[name=groupId]", empty.ID)
	b.Fill("#main input[name=command]", "read /3/0/0")
	b.ClickText("#main button", "Create bulk operation")
	b.WaitText("#main .form-errors [role=alert]", "no devices")

	b.Select("#main select[name=groupId]", group)
	b.ClickText("#main button", "Create bulk operation")
	b.WaitText("#main tr.fresh .bulk-progress", "2 successful")
	b.WaitGone("#main .form-errors [role=alert]")
	b.WaitText("#main tr.fresh .bulk-status", "COMPLETED")
	b.Screenshot("bulkoperations")

	// one due tomorrow, canceled from the list
	var later struct{ ID string }
	if code := a.Admin("POST", "/devicecontrol/bulkoperations", map[string]any{"groupId": group, "startDate": time.Now().Add(24 * time.Hour).Format(time.RFC3339),
		"operationPrototype": map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/3"}}}, &later); code != http.StatusCreated {
		t.Fatalf("bulk operation: HTTP %d", code)
	}
	b.Open("/bulkoperations")
	row := `#main tr[data-bulk-id="` + later.ID + `"]`
	b.WaitText(row+" .bulk-status", "ACTIVE")
	b.ClickText(row+" button", "Cancel")
	b.ClickText("dialog button", "Cancel it")
	b.WaitText(row+" .bulk-status", "CANCELED")
	b.WaitGone(row + " button")
	var got struct{ Status string }
	if code := a.Admin("GET", "/devicecontrol/bulkoperations/"+later.ID, nil, &got); code != http.StatusOK || got.Status != "CANCELED" {
		t.Fatalf("after the cancel: HTTP %d, %s", code, got.Status)
	}
}

// The firmware repository: a firmware added in the console gets a
// version from an uploaded file (stored as a binary), which is listed;
// a version without a package is refused where it was asked; Install on
// the version, and on a device's Control tab, create the c8y_Firmware
// operation of the chosen device.
func TestFirmwareRepository(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "fwr", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	pkg := filepath.Join(t.TempDir(), "sensor-2.1.0.bin")
	if err := os.WriteFile(pkg, bytes.Repeat([]byte("firmware "), 64), 0o644); err != nil {
		t.Fatal(err)
	}

	b := browsertest.AdminBrowser(t, a, "")
	b.Go("/firmware")
	b.WaitText("#main", "No firmware yet")
	b.Fill("#main input[name=name]", "sensor")
	b.Fill("#main input[name=description]", "Firmware of the field sensors")
	b.Fill("#main input[name=deviceType]", "c8y_lwm2m")
	b.ClickText("#main button", "Add firmware")
	b.WaitText("#main .firmware h3", "sensor")

	b.Fill("#main .version-form input[name=version]", "2.1.0")
	b.ClickText("#main .version-form button", "Add version")
	b.WaitText("#main .version-form .form-errors [role=alert]", "Give the package")
	b.UploadFiles("#main .version-form input[name=file]", pkg)
	b.ClickText("#main .version-form button", "Add version")
	b.WaitText("#main .versions tbody", "2.1.0")
	b.WaitText("#main .versions tbody", "binary")
	b.Screenshot("firmware")

	var fws struct {
		ManagedObjects []struct {
			ID          string
			Description string
			C8yFilter   struct{ Type string } `json:"c8y_Filter"`
		}
	}
	a.Admin("GET", "/inventory/managedObjects?type=c8y_Firmware", nil, &fws)
	if len(fws.ManagedObjects) != 1 || fws.ManagedObjects[0].C8yFilter.Type != "c8y_lwm2m" || fws.ManagedObjects[0].Description == "" {
		t.Fatalf("the repository: %+v", fws.ManagedObjects)
	}
	var vers struct {
		References []struct {
			ManagedObject struct {
				Type        string
				C8yFirmware struct{ Version, URL string } `json:"c8y_Firmware"`
			}
		}
	}
	a.Admin("GET", "/inventory/managedObjects/"+fws.ManagedObjects[0].ID+"/childAdditions", nil, &vers)
	if len(vers.References) != 1 || vers.References[0].ManagedObject.C8yFirmware.Version != "2.1.0" ||
		!strings.Contains(vers.References[0].ManagedObject.C8yFirmware.URL, "/inventory/binaries/") {
		t.Fatalf("the firmware's versions: %+v", vers.References)
	}

	b.ClickText("#main .versions button", "Install")
	b.WaitFor("the device among the choices", `[...document.querySelectorAll('dialog select[name=deviceId] option')].some((o) => o.value === '`+id+`')`)
	b.Select("dialog select[name=deviceId]", id)
	b.ClickText("dialog button", "Install")
	b.WaitText("#toasts", "installs sensor 2.1.0")

	b.Go("/devices/" + id + "/control")
	b.ClickText("#main button", "Install firmware")
	b.WaitFor("the version among the choices", `[...document.querySelectorAll('dialog select[name=version] option')].some((o) => o.textContent === 'sensor 2.1.0')`)
	b.ClickText("dialog button", "Install")
	b.WaitText("#toasts", "installs firmware sensor 2.1.0")
	var ops struct {
		Operations []struct {
			C8yFirmware *struct{ Name, Version, URL string } `json:"c8y_Firmware"`
		}
	}
	a.Admin("GET", "/devicecontrol/operations?deviceId="+id+"&pageSize=100", nil, &ops)
	n := 0
	for _, op := range ops.Operations {
		if op.C8yFirmware != nil && op.C8yFirmware.Version == "2.1.0" && op.C8yFirmware.URL == vers.References[0].ManagedObject.C8yFirmware.URL {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d c8y_Firmware operations of version 2.1.0 on the device, want 2", n)
	}
}
