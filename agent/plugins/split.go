package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// ErrBadValue is wrapped by the error of a value that makes its plugin
// fail by itself: it crashed the plugin process, or got no answer within
// the timeout while the plugin answered its health check, each time in a
// call of its own; or the plugin failed the whole call for it. Retrying
// it will not help.
var ErrBadValue = errors.New("the value makes the plugin fail")

// Outcome is what became of one value of DecodeEach.
type Outcome struct {
	// Result is the decoder's answer when Err is nil (Success false is
	// its verdict that the bytes cannot be decoded).
	Result DecodeResult
	// Err says why the value has no answer: for IsRetryable errors keep
	// the value and try again later; any other error is final for it.
	Err error
}

// How long DecodeEach waits for a crashed process to be reaped, and at
// most for it to be running again, before it calls the plugin anew.
const (
	crashWait   = time.Second
	restartWait = 15 * time.Second
)

// DecodeEach decodes reqs with the decoder name and returns one outcome
// per value, in order. When the batch call fails in a way one value can
// cause (an error that is not retryable, the plugin process exiting during
// the call, or no answer within the timeout while the plugin still answers
// its health check), the batch is split in halves, each called again, down
// to single values: the culprit fails alone, with ErrBadValue, and the
// others are decoded. A single value is blamed for a crash or a timeout
// only when it fails so again in a call of its own, with no other call to
// the plugin under way, so that a kill from outside or a neighbour's crash
// is not taken for its fault.
func (h *Host) DecodeEach(ctx context.Context, name string, reqs []DecodeRequest) []Outcome {
	out := make([]Outcome, len(reqs))
	e, err := h.lookup(name, sdk.KindDecoder, false)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	h.decodeSplit(ctx, e, reqs, out, 0, false)
	return out
}

func (h *Host) decodeSplit(ctx context.Context, e *entry, reqs []DecodeRequest, out []Outcome, depth int, alone bool) {
	if depth > 0 && !alone { // a call alone settles under its lock
		// a part of a batch that made the plugin fail: the process may be
		// restarting after a crash, its own or a sibling part's
		if err := h.settle(ctx, e); err != nil {
			for i := range out {
				out[i].Err = err
			}
			return
		}
	}
	var res []DecodeResult
	a, err := h.invoke(ctx, e, alone, func(ctx context.Context, impl any) error {
		var err error
		res, err = impl.(sdk.DecoderClient).DecodeBatch(ctx, reqs)
		return err
	})
	if err == nil {
		for i := range out {
			out[i] = Outcome{Result: res[i]}
		}
		return
	}
	fault := h.fault(ctx, e, a, err)
	switch {
	case fault == "":
		for i := range out {
			out[i].Err = err
		}
	case len(reqs) == 1 && (alone || !IsRetryable(err)):
		// err is not wrapped: the value's failure is final, whatever the call's
		out[0].Err = fmt.Errorf("plugin %s: %w: %s (%v)", e.spec.Name, ErrBadValue, fault, err)
	case len(reqs) == 1:
		h.decodeSplit(ctx, e, reqs, out, depth+1, true)
	default:
		mid := len(reqs) / 2
		h.decodeSplit(ctx, e, reqs[:mid], out[:mid], depth+1, false)
		h.decodeSplit(ctx, e, reqs[mid:], out[mid:], depth+1, false)
	}
}

// fault says how the values of a failed call may be at fault, or "" when
// the failure is the plugin's or the moment's.
func (h *Host) fault(ctx context.Context, e *entry, a attempt, err error) string {
	if !a.reached || ctx.Err() != nil {
		return ""
	}
	if !IsRetryable(err) {
		return "the plugin failed the call"
	}
	p, isProcess := e.b.(*process)
	if a.timedOut {
		if pr, ok := e.b.(interface{ answers(context.Context) bool }); ok && pr.answers(ctx) {
			return fmt.Sprintf("no answer within %v while the plugin answered its health check", time.Duration(e.spec.Timeout))
		}
		// the timeout was the last one the plugin was allowed (hungAfter):
		// it is being restarted, so split on the new process
		if isProcess && p.crashedDuring(ctx, a.gen, crashWait) {
			return fmt.Sprintf("no answer within %v, and the plugin process was restarted", time.Duration(e.spec.Timeout))
		}
		return ""
	}
	if isProcess && p.crashedDuring(ctx, a.gen, crashWait) {
		return "the plugin process exited during the call"
	}
	return ""
}

// settle returns once the plugin process runs and answers its health
// check, waiting for a process that died to be replaced, so that the call
// made next finds it alive.
func (h *Host) settle(ctx context.Context, e *entry) error {
	p, ok := e.b.(*process)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.spec.MaxBackoff)+restartWait)
	defer cancel()
	for {
		if err := p.waitReady(ctx); err != nil {
			return fmt.Errorf("plugin %s: %w", e.spec.Name, err)
		}
		_, gen, err := p.current()
		if err == nil && p.check(ctx) == nil {
			return nil
		}
		// dead, or not answering: give its supervisor time to notice
		p.crashedDuring(ctx, gen, crashWait)
		if ctx.Err() != nil {
			return fmt.Errorf("plugin %s: %w: the process does not answer its health check", e.spec.Name, ErrUnavailable)
		}
	}
}
