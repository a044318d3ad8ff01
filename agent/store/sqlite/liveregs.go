package sqlite

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// schemaLiveRegistrations indexes the managed objects that hold a live
// registration: those whose lwm2m fragment has a registrationId that is
// a non-empty string, as the MongoDB engine selects them
// ({"lwm2m.registrationId": {$gt: ""}}, which compares strings with
// strings only). The session layer writes that fragment on every
// Register, Update, De-register and expiry (an ended registration has an
// empty id), and the start restores every live one (LiveRegistrations).
//
// The index is partial, so that it holds the live objects alone, and it
// holds their lwm2m fragment (liveFragment, NULL for an object without a
// live registration), so that the start reads every live registration
// from the index without a look at the objects' rows or a parse of their
// whole fragments: 100,000 registrations are read several times faster
// than through an index of the keys alone. A query uses it only where it
// spells liveFragment as the index does.
const schemaLiveRegistrations = `CREATE INDEX managed_objects_live ON managed_objects (tenant, id, (` + liveFragment + `))
	WHERE (` + liveFragment + `) IS NOT NULL`

const liveFragment = `iif(json_type(fragments, '$.lwm2m.registrationId') = 'text' AND fragments ->> '$.lwm2m.registrationId' <> '',
		fragments -> '$.lwm2m', NULL)`

// selectLive reads each live registration with what its device's record
// says of how it may connect, the record found by its primary key in the
// same query; the two parameters it reads come in one JSON array, for
// one parse of the parameters.
const selectLive = `SELECT o.tenant, o.id, ` + liveFragment + `, r.device IS NOT NULL, coalesce(r.serialization, ''),
		json_extract(r.params, '$.` + store.ParamSecurityMode + `', '$.lwm2mPskId'),
		coalesce(r.psk_key IS NOT NULL, 0), coalesce(r.pending_create OR r.pending_delete, 0)
	FROM managed_objects o INDEXED BY managed_objects_live
	LEFT JOIN registrations r ON r.tenant = o.tenant AND r.device = o.id
	WHERE (` + liveFragment + `) IS NOT NULL`

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, across tenants, streaming them from one query; an
// error of fn stops it and is returned.
//
// SQLite's work on each row (the fragment taken out of the object's
// JSON, the record's lookup) and the fragment's decoding take about as
// long each, so a goroutine reads the rows while this one decodes them
// and calls fn; what is read ahead is bounded by liveBatches batches of
// liveBatch rows.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(store.LiveRegistration) error) error {
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []liveRow, liveBatches)
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(batches)
		readErr = s.readLive(readCtx, batches)
	}()
	// On an early return, the reader is stopped and waited for, so that
	// it holds no connection once this returns.
	defer func() {
		cancel()
		for range batches {
		}
		<-done
	}()
	for batch := range batches {
		for _, r := range batch {
			// The caller's end stops the calls at once, not after what
			// was read ahead.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("live registrations: %w", err)
			}
			var err error
			if r.l.Fragment, err = decodeFragments(r.frag); err != nil {
				return fmt.Errorf("live registration of %s: %w", r.l.DeviceID, err)
			}
			if err := fn(r.l); err != nil {
				return err
			}
		}
	}
	<-done
	if readErr != nil {
		return fmt.Errorf("live registrations: %w", readErr)
	}
	return nil
}

const (
	liveBatch   = 128
	liveBatches = 2
)

// liveRow is a live registration read, its fragment not decoded yet.
type liveRow struct {
	l    store.LiveRegistration
	frag []byte
}

// readLive sends the rows of selectLive in batches until they end or ctx
// does.
func (s *Store) readLive(ctx context.Context, out chan<- []liveRow) error {
	rows, err := s.db.Query(ctx, selectLive)
	if err != nil {
		return err
	}
	defer rows.Close()
	batch := make([]liveRow, 0, liveBatch)
	send := func() bool {
		select {
		case out <- batch:
			batch = make([]liveRow, 0, liveBatch)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for rows.Next() {
		r, err := scanLive(rows)
		if err != nil {
			return err
		}
		if batch = append(batch, r); len(batch) == liveBatch && !send() {
			return ctx.Err()
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(batch) > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// scanLive reads a row of selectLive.
func scanLive(row scanner) (liveRow, error) {
	var (
		r        liveRow
		a        store.RecordAccess
		recorded bool
		params   []byte
	)
	if err := row.Scan(&r.l.Tenant, &r.l.DeviceID, &r.frag, &recorded, &r.l.Serialization, &params, &a.Keyed, &a.Incomplete); err != nil {
		return r, err
	}
	if recorded {
		// A parameter that is not a string reads as none, as
		// DeviceRegistration's readers take it.
		if p, _ := decodeJSON(params); p != nil {
			named := p.([]any)
			a.SecurityMode, _ = named[0].(string)
			a.PSKIdentity, _ = named[1].(string)
		}
		r.l.Record = &a
	}
	return r, nil
}
