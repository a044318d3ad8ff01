package ops

import (
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The decisions follow the Firmware Update state machine of Core TS 1.1
// (E.6): State 0 Idle, 1 Downloading, 2 Downloaded, 3 Updating; Update
// Result 0 initial, 1 success, 2..9 failures, 10 cancelled, 11 deferred.
func TestNextFirmwareStep(t *testing.T) {
	check := fwProgress{Step: fwStepCheck}
	sent := fwProgress{Step: fwStepDownload}
	written := fwProgress{Step: fwStepDownload, URIWritten: true}
	update := fwProgress{Step: fwStepUpdate}
	updateSent := fwProgress{Step: fwStepUpdate, UpdateSent: true}
	pushing := fwProgress{Step: fwStepDownload, Method: methodPush, URIWritten: true, Offset: 4096, Size: 10000}
	pushed := fwProgress{Step: fwStepDownload, Method: methodPush, URIWritten: true, Offset: 10000, Size: 10000}
	for _, tc := range []struct {
		name          string
		p             fwProgress
		state, result int64
		want          fwAction
		reason        string
	}{
		{"idle device: write the URI", check, 0, 0, fwDeliver, ""},
		{"idle after an earlier success", check, 0, 1, fwDeliver, ""},
		{"idle after an earlier failure", check, 0, 4, fwDeliver, ""},
		{"busy downloading", check, 1, 0, fwFail, "firmware update already in progress: state 1 (downloading)"},
		{"busy downloaded", check, 2, 0, fwFail, "already in progress: state 2"},
		{"busy updating", check, 3, 0, fwFail, "already in progress: state 3"},
		{"write unanswered, device idle", sent, 0, 0, fwDeliver, ""},
		{"write unanswered, device downloads", sent, 1, 0, fwWait, ""},
		{"write unanswered, device downloaded", sent, 2, 0, fwExecute, ""},
		{"downloading", written, 1, 0, fwWait, ""},
		{"downloaded", written, 2, 0, fwExecute, ""},
		{"not enough flash", written, 0, 2, fwFail, "Update Result 2: not enough flash memory"},
		{"out of RAM", written, 0, 3, fwFail, "Update Result 3: out of RAM"},
		{"connection lost", written, 0, 4, fwFail, "firmware update failed at step download: Update Result 4: connection lost during the download"},
		{"integrity check", written, 0, 5, fwFail, "Update Result 5: integrity check failure"},
		{"unsupported package", written, 0, 6, fwFail, "Update Result 6: unsupported package type"},
		{"invalid URI", written, 0, 7, fwFail, "Update Result 7: invalid URI"},
		{"unsupported protocol", written, 0, 9, fwFail, "Update Result 9: unsupported protocol"},
		{"cancelled", written, 0, 10, fwFail, "Update Result 10: firmware update cancelled"},
		{"idle without result: download again", written, 0, 0, fwDeliver, ""},
		{"updated by itself", written, 0, 1, fwSucceed, ""},
		{"execute unanswered, still downloaded", update, 2, 0, fwExecute, ""},
		{"executed, not acted on yet", updateSent, 2, 0, fwExecute, ""},
		{"deferred by the user", updateSent, 2, 11, fwWait, ""},
		{"update failed back to downloaded", updateSent, 2, 8, fwFail, "firmware update failed at step update: Update Result 8: firmware update failed"},
		{"updating", updateSent, 3, 0, fwWait, ""},
		{"updated", updateSent, 0, 1, fwSucceed, ""},
		{"update failed to idle", updateSent, 0, 8, fwFail, "Update Result 8"},
		{"integrity failure at update", updateSent, 0, 5, fwFail, "at step update: Update Result 5"},
		{"idle without result after update", updateSent, 0, 0, fwFail, "back in state 0 (idle) without an Update Result"},
		{"unknown state", written, 7, 0, fwFail, "unexpected state 7"},
		// a push: only the agent moves it on
		{"push stopped half-way: resume", pushing, 1, 0, fwDeliver, ""},
		{"push of unknown size: resume", fwProgress{Step: fwStepDownload, Method: methodPush, URIWritten: true}, 1, 0, fwDeliver, ""},
		{"push whole, device still checking", pushed, 1, 0, fwWait, ""},
		{"push whole, downloaded", pushed, 2, 0, fwExecute, ""},
		{"push lost by a reboot: push again", pushing, 0, 0, fwDeliver, ""},
		{"push refused for flash", pushing, 0, 2, fwFail, "Update Result 2"},
		{"pull downloading is not resumed by the agent", written, 1, 0, fwWait, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := nextFirmwareStep(tc.p, tc.state, tc.result)
			if got != tc.want {
				t.Errorf("action %d, want %d (reason %q)", got, tc.want, reason)
			}
			if tc.reason != "" && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", reason, tc.reason)
			}
			if tc.want != fwFail && reason != "" {
				t.Errorf("reason %q without a failure", reason)
			}
		})
	}
}

func TestFirmwareOf(t *testing.T) {
	fw := shell.Firmware{Name: "fw", Version: "2.0", URL: "http://h/fw_2.0.bin"}
	for _, tc := range []struct {
		name string
		op   store.Operation
		want shell.Firmware
		ok   bool
	}{
		{"fwupdate", store.Operation{HasCommand: true, Text: "fwupdate fw;2.0;http://h/fw_2.0.bin"}, fw, true},
		{"c8y_Firmware", store.Operation{Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw", "version": "2.0", "url": "http://h/fw_2.0.bin"}}}, fw, true},
		{"c8y_Firmware without url", store.Operation{Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw"}}}, shell.Firmware{}, false},
		{"other command", store.Operation{HasCommand: true, Text: "read /5/0/3"}, shell.Firmware{}, false},
		{"command wins over the fragment", store.Operation{HasCommand: true, Text: "read /3/0", Fragments: map[string]any{"c8y_Firmware": map[string]any{"url": "http://h"}}}, shell.Firmware{}, false},
		{"malformed command", store.Operation{HasCommand: true, Text: "fwupdate nothing"}, shell.Firmware{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FirmwareOf(tc.op)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("FirmwareOf = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// The progress goes through the store as BSON and comes back with other
// number types; what the runner resumes from must survive that.
func TestProgressRoundTrip(t *testing.T) {
	started := time.Date(2026, 3, 1, 10, 0, 0, 123e6, time.UTC)
	for _, p := range []fwProgress{
		{Step: fwStepUpdate, Started: started, URIWritten: true, UpdateSent: true, State: 3, Result: 0, Message: "x"},
		{Step: fwStepDownload, Started: started, URIWritten: true, State: 1, Method: methodPush, Reset: ResetPackage,
			Offset: 3072, Size: 40960, Block: 256, Restarts: 2, Fallback: "pull over coap failed"},
		{Step: fwStepDownload, Started: started, Method: methodPull, Alternative: methodPush, Scheme: "coaps", Base: "coaps://10.0.0.5:5684"},
	} {
		frag := p.fragment()
		// as the store answers: int32 or float64 numbers
		frag["state"], frag["result"] = int32(p.State), int32(0)
		if _, ok := frag["offset"]; ok {
			frag["offset"], frag["size"], frag["block"], frag["restarts"] = float64(p.Offset), int32(p.Size), int64(p.Block), int32(p.Restarts)
		}
		got, ok := progressOf(store.Operation{Fragments: map[string]any{FirmwareProgressFragment: frag}})
		if !ok || got != p {
			t.Errorf("progressOf = %+v, %v; want %+v", got, ok, p)
		}
	}
	if _, ok := progressOf(store.Operation{Fragments: map[string]any{FirmwareProgressFragment: map[string]any{"step": "bogus"}}}); ok {
		t.Error("a progress with an unknown step was taken")
	}
}
