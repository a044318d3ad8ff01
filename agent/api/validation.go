package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/validation"
)

// Writes are checked before they are queued (API.md, "LWM2M-specific
// resources"): every value a write, cwrite, create or writeb puts on a
// device is typed by the tenant's definition, as the runner will type it,
// and checked against its resource's validation rules. A value its
// resource's type cannot hold, or that fails the rules, refuses the whole
// request with 422; nothing is stored, so nothing reaches the device.

// refusedWrites is a request's writes refused: the answer is 422 with its text.
type refusedWrites struct{ err error }

func (r *refusedWrites) Error() string { return r.err.Error() }
func (r *refusedWrites) Unwrap() error { return r.err }

// definitions are the tenant's object definitions writes are typed by;
// a nil ModelSource types every value as a string, as the runner does.
func (a *API) definitions() ops.Definitions {
	if a.cfg.Models == nil {
		return nil
	}
	return a.cfg.Models
}

// writesOf reports whether a command writes values to the device.
func writesOf(k shell.Kind) bool {
	switch k {
	case shell.Write, shell.CompositeWrite, shell.Create, shell.WriteBinary:
		return true
	}
	return false
}

// checkWrites types and validates what the commands write to a device.
// lines numbers the commands for messages (nil for a single command). It
// returns nil, a *refusedWrites naming every refused value (each prefixed by
// its line), store.ErrNotFound wrapped when the device is not the
// tenant's, or the error of a store that could not answer.
func (a *API) checkWrites(ctx context.Context, tenant, deviceID string, cmds []shell.Command, lines []int) error {
	var (
		mo     *store.ManagedObject
		refuse []string
	)
	for i, c := range cmds {
		if !writesOf(c.Kind) {
			continue
		}
		if mo == nil {
			// Checked first, so that another tenant's device answers
			// 404 whatever its rules would say.
			m, err := a.cfg.Store.GetManagedObject(ctx, tenant, deviceID)
			if err != nil {
				return fmt.Errorf("device %q: %w", deviceID, err)
			}
			mo = &m
		}
		var inst node.Path
		if c.Kind == shell.Create {
			inst = newInstance(a.objectLinks(store.User{Tenant: tenant}, *mo), c.Paths[0])
		}
		recs, err := ops.Written(a.definitions(), tenant, c, inst)
		if err == nil {
			err = a.validator.Check(ctx, tenant, deviceID, recs)
			if err != nil && !validation.IsFailure(err) && !errors.Is(err, store.ErrInvalid) {
				return err
			}
		}
		if err == nil {
			continue
		}
		prefix := ""
		if lines != nil {
			prefix = "line " + strconv.Itoa(lines[i]) + ": "
		}
		for _, e := range unjoin(err) {
			refuse = append(refuse, prefix+e.Error())
		}
	}
	if len(refuse) > 0 {
		return &refusedWrites{errors.New(strings.Join(refuse, "\n"))}
	}
	return nil
}

// unjoin lists the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// commandLines numbers the commands of a text as shell.ParseText finds
// them: one per line that is not blank.
func commandLines(text string) []int {
	var lines []int
	for i, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, i+1)
		}
	}
	return lines
}

// newInstance is the instance a create of object p is expected to make:
// the lowest instance ID the device did not register, which is what the
// runner picks when it sends the create. Rules are per resource, not per
// instance; the instance only names the values in messages.
func newInstance(links []string, p node.Path) node.Path {
	if p.Depth != 1 {
		return p
	}
	used := map[uint16]bool{}
	for _, l := range links {
		if lp, ok := linkPath(l); ok && lp.Object == p.Object && lp.Depth == 2 {
			used[lp.Instance] = true
		}
	}
	var id uint16
	for used[id] {
		id++
	}
	return p.Child(id)
}
