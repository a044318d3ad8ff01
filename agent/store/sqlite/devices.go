package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// reserved are the top-level members that a fragment cannot replace, as
// the MongoDB engine keeps them.
var reserved = map[string]bool{
	"_id": true, "id": true, "tenant": true, "seq": true, "self": true,
	"creationTime": true, "lastUpdated": true, "owner": true,
}

// checkFragments refuses the names the MongoDB engine cannot store, so
// that both engines accept the same input. A '"' would end the quoted
// label of a JSON path early.
func checkFragments(f map[string]any) error {
	for k := range f {
		if k == "" || strings.HasPrefix(k, "$") || strings.ContainsAny(k, `."`) {
			return fmt.Errorf("%w: fragment name %q: it must be non-empty and contain no '.', no '\"' and no leading '$'", store.ErrInvalid, k)
		}
	}
	return nil
}

// checkFields accepts "fragment.field" keys, and plain fragment names.
func checkFields(f map[string]any) error {
	for k := range f {
		frag, field, dotted := strings.Cut(k, ".")
		if err := checkFragments(map[string]any{frag: nil}); err != nil {
			return err
		}
		if dotted && (field == "" || strings.HasPrefix(field, "$") || strings.ContainsAny(field, `."`)) {
			return fmt.Errorf("%w: field %q: it must be fragment.field with a non-empty field name without '.', '\"' and leading '$'", store.ErrInvalid, k)
		}
	}
	return nil
}

// path is the JSON path of a member, or of a fragment's field for
// "fragment.field"; each label quoted, so that a name such as "a[0]" is
// one label.
func path(name string) string { return `$."` + strings.ReplaceAll(name, ".", `"."`) + `"` }

func nowMilli() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// nextID takes the next id of the sequence shared by every kind of
// object.
func nextID(tx *Tx) (int64, error) { return reserveIDs(tx, 1) }

// marshal encodes a fragment, or fragments, as stored: times as date
// objects (jsondates.go), floats with a fraction or an exponent so that
// they are read back as floats (encodeJSON), as the MongoDB engine keeps
// its doubles.
//
// The shapes the agent's own writers pass (the registration state on
// every Register) are written in one pass, times as dates on the way,
// without the copy jsonDates makes first; anything else takes the
// general path.
func marshal(what string, v any) (string, error) {
	if b, err := appendDated(make([]byte, 0, 256), v); err == nil {
		return string(b), nil
	}
	return encodeJSON(what, jsonDates(v))
}

// CreateManagedObject stores a new object with a fresh id (mo.ID is
// ignored) and returns it as stored; reserved members and name and type
// among the fragments are dropped.
func (s *Store) CreateManagedObject(ctx context.Context, tenant string, mo store.ManagedObject) (store.ManagedObject, error) {
	doc, err := objectFragments(mo.Fragments)
	if err != nil {
		return store.ManagedObject{}, err
	}
	now := nowMilli()
	err = s.db.Write(ctx, func(tx *Tx) error {
		var err error
		mo.ID, err = insertObject(tx, tenant, mo.Name, mo.Type, doc, now)
		return err
	})
	if err != nil {
		return store.ManagedObject{}, fmt.Errorf("create managed object: %w", err)
	}
	mo.CreationTime, mo.LastUpdated = now, now
	// The caller's values, as decoded from the stored JSON, so that the
	// answer is what a read gives.
	if mo.Fragments, err = decodeFragments([]byte(doc)); err != nil {
		return store.ManagedObject{}, fmt.Errorf("create managed object: %w", err)
	}
	return mo, nil
}

// objectFragments checks and encodes the fragments of a new object,
// without the members that are no fragments.
func objectFragments(fragments map[string]any) (string, error) {
	if err := checkFragments(fragments); err != nil {
		return "", err
	}
	frags := make(map[string]any, len(fragments))
	for k, v := range fragments {
		if !reserved[k] && k != "name" && k != "type" {
			frags[k] = v
		}
	}
	return marshal("managed object fragments", frags)
}

// insertObject stores a new object with the next id, and returns the id.
func insertObject(tx *Tx, tenant, name, typ, doc string, now time.Time) (string, error) {
	seq, err := nextID(tx)
	if err != nil {
		return "", err
	}
	id := strconv.FormatInt(seq, 10)
	_, err = tx.Exec(`INSERT INTO managed_objects (tenant, id, seq, name, type, creation_time, last_updated, fragments)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tenant, id, seq, name, typ, now.UnixMilli(), now.UnixMilli(), doc)
	return id, err
}

const moColumns = "id, name, type, creation_time, last_updated, fragments"

// moColumnsOf is moColumns of the table aliased as alias.
func moColumnsOf(alias string) string {
	return alias + "." + strings.ReplaceAll(moColumns, ", ", ", "+alias+".")
}

// GetManagedObject returns the tenant's object id.
func (s *Store) GetManagedObject(ctx context.Context, tenant, id string) (store.ManagedObject, error) {
	return readMO(s.db.QueryRow(ctx, "SELECT "+moColumns+" FROM managed_objects WHERE tenant = ? AND id = ?", tenant, id), id)
}

// readMO decodes a row of moColumns.
func readMO(row scanner, id string) (store.ManagedObject, error) {
	var (
		mo              store.ManagedObject
		created, update int64
		doc             []byte
	)
	err := row.Scan(&mo.ID, &mo.Name, &mo.Type, &created, &update, &doc)
	if err := notFound(err, "managed object "+id); err != nil {
		return store.ManagedObject{}, err
	}
	mo.CreationTime, mo.LastUpdated = time.UnixMilli(created).UTC(), time.UnixMilli(update).UTC()
	if mo.Fragments, err = decodeFragments(doc); err != nil {
		return store.ManagedObject{}, fmt.Errorf("read managed object %s: %w", id, err)
	}
	return mo, nil
}

// decodeFragments reads a fragments column. Numbers come back as int64
// when whole and float64 otherwise, and dates as time.Time in UTC, as
// the MongoDB engine returns them (decodeJSON).
func decodeFragments[T string | []byte](doc T) (map[string]any, error) {
	v, err := decodeJSON([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("fragments: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("fragments: %T, not an object", v)
	}
	return m, nil
}

// mergeSQL builds the assignments of one update of an object's
// members: name and type replaced when present, every other member set
// (a nil value removes it when unset is true), reserved members
// ignored, last_updated bumped. The fragments are changed by json_set
// and json_remove inside the statement, never read into Go and written
// back, so that concurrent updates of one object keep each other's
// fragments. Only the number of members shapes the SQL text: the names
// are bound as paths.
func mergeSQL(fields map[string]any, unset bool, now time.Time) (string, []any, error) {
	var (
		sets    []string
		args    []any
		remove  []any
		setArgs = make([]any, 0, 2*len(fields))
	)
	// In the order of the names, so that a fragment set whole comes
	// before a field set in it, and the SQL text is the same for the
	// same names.
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch {
		case reserved[fragmentName(k)]:
		case k == "name" || k == "type":
			str, _ := v.(string)
			sets = append(sets, k+" = ?")
			args = append(args, str)
		case v == nil && unset:
			remove = append(remove, path(k))
		default:
			doc, err := marshal("fragment "+k, v)
			if err != nil {
				return "", nil, err
			}
			p, ok := statePaths[k]
			if !ok {
				p = path(k)
			}
			setArgs = append(setArgs, p, doc)
		}
	}
	if len(sets) == 0 && len(remove) == 0 && len(setArgs)/2 < len(setSQL) {
		// fragments set, nothing else: the registration state's shape,
		// on every Register, with its SQL text made once; room for the
		// object's key, which the caller appends
		args = append(make([]any, 0, len(setArgs)+3), setArgs...)
		return setSQL[len(setArgs)/2], append(args, now.UnixMilli()), nil
	}
	frags := "fragments"
	if len(remove) > 0 {
		frags = "json_remove(" + frags + strings.Repeat(", ?", len(remove)) + ")"
		args = append(args, remove...)
	}
	if len(setArgs) > 0 {
		frags = "json_set(" + frags + strings.Repeat(", ?, json(?)", len(setArgs)/2) + ")"
		args = append(args, setArgs...)
	}
	sets = append(sets, "fragments = "+frags, "last_updated = ?")
	args = append(args, now.UnixMilli())
	return strings.Join(sets, ", "), args, nil
}

// setSQL[n] is mergeSQL's SET clause of n fragments set and nothing
// else.
var setSQL = func() (out [8]string) {
	for n := range out {
		frags := "fragments"
		if n > 0 {
			frags = "json_set(fragments" + strings.Repeat(", ?, json(?)", n) + ")"
		}
		out[n] = "fragments = " + frags + ", last_updated = ?"
	}
	return out
}()

// statePaths are the paths of the fragments the registration state
// writes on every Register, made once.
var statePaths = map[string]string{
	"c8y_Availability": path("c8y_Availability"),
	"c8y_Connection":   path("c8y_Connection"),
	"lwm2m":            path("lwm2m"),
}

// fragmentName is the fragment a name ("fragment" or "fragment.field")
// is in.
func fragmentName(k string) string {
	name, _, _ := strings.Cut(k, ".")
	return name
}

// UpdateManagedObject merges fields into the object: each top-level
// member replaces the stored one ("name" and "type" included), a nil
// value removes the fragment (and empties name or type), reserved
// members (id, creationTime, ...) are ignored. It returns the updated
// object.
func (s *Store) UpdateManagedObject(ctx context.Context, tenant, id string, fields map[string]any) (store.ManagedObject, error) {
	if err := checkFragments(fields); err != nil {
		return store.ManagedObject{}, err
	}
	sets, args, err := mergeSQL(fields, true, nowMilli())
	if err != nil {
		return store.ManagedObject{}, fmt.Errorf("update managed object %s: %w", id, err)
	}
	var mo store.ManagedObject
	err = s.db.Write(ctx, func(tx *Tx) error {
		var err error
		mo, err = readMO(tx.QueryRow("UPDATE managed_objects SET "+sets+" WHERE tenant = ? AND id = ? RETURNING "+moColumns,
			append(args, tenant, id)...), id)
		return err
	})
	if err != nil {
		return store.ManagedObject{}, fmt.Errorf("update %w", err)
	}
	return mo, nil
}

// UpdateFragments merges fragments into the object like
// UpdateManagedObject, without reading it back. As in the MongoDB
// engine, a nil value is stored as null rather than removing the
// fragment, and name and type are members like the others.
func (s *Store) UpdateFragments(ctx context.Context, tenant, id string, fragments map[string]any) error {
	if err := checkFragments(fragments); err != nil {
		return err
	}
	err := s.db.Write(ctx, func(tx *Tx) error { return updateFragments(tx, tenant, id, fragments, nowMilli()) })
	if err != nil {
		return fmt.Errorf("update fragments of %s: %w", id, err)
	}
	return nil
}

func updateFragments(tx *Tx, tenant, id string, fragments map[string]any, now time.Time) error {
	sets, args, err := mergeSQL(fragments, false, now)
	if err != nil {
		return err
	}
	return tx.execOne("UPDATE managed_objects SET "+sets+" WHERE tenant = ? AND id = ?", append(args, tenant, id)...)
}

// CreateExternalID names an existing object of the tenant; ErrConflict
// if the (type, externalId) pair is taken in the tenant.
func (s *Store) CreateExternalID(ctx context.Context, tenant string, x store.ExternalID) error {
	if x.Type == "" || x.ExternalID == "" {
		return fmt.Errorf("%w: external ID needs type and externalId", store.ErrInvalid)
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		var one int
		err := tx.QueryRow("SELECT 1 FROM managed_objects WHERE tenant = ? AND id = ?", tenant, x.ManagedObjectID).Scan(&one)
		if err := notFound(err, "managed object "+x.ManagedObjectID); err != nil {
			return err
		}
		_, err = tx.Exec("INSERT INTO external_ids (tenant, type, external_id, device) VALUES (?, ?, ?, ?)",
			tenant, x.Type, x.ExternalID, x.ManagedObjectID)
		return err
	})
	if err != nil {
		return fmt.Errorf("create external id %s %s: %w", x.Type, x.ExternalID, err)
	}
	return nil
}

// GetExternalID resolves an external ID in the tenant.
func (s *Store) GetExternalID(ctx context.Context, tenant, typ, ext string) (store.ExternalID, error) {
	x := store.ExternalID{Type: typ, ExternalID: ext}
	err := s.db.QueryRow(ctx, "SELECT device FROM external_ids WHERE tenant = ? AND type = ? AND external_id = ?",
		tenant, typ, ext).Scan(&x.ManagedObjectID)
	if err := notFound(err, "external id "+typ+" "+ext); err != nil {
		return store.ExternalID{}, err
	}
	return x, nil
}

// ExternalIDsOf lists the external IDs of the tenant's object id, by type
// and external ID.
func (s *Store) ExternalIDsOf(ctx context.Context, tenant, id string) ([]store.ExternalID, error) {
	rows, err := s.db.Query(ctx, `SELECT type, external_id FROM external_ids WHERE tenant = ? AND device = ?
		ORDER BY type, external_id`, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("list external ids of %s: %w", id, err)
	}
	defer rows.Close()
	out := []store.ExternalID{}
	for rows.Next() {
		x := store.ExternalID{ManagedObjectID: id}
		if err := rows.Scan(&x.Type, &x.ExternalID); err != nil {
			return nil, fmt.Errorf("list external ids of %s: %w", id, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list external ids of %s: %w", id, err)
	}
	return out, nil
}

// DeleteExternalID removes an external ID of the tenant.
func (s *Store) DeleteExternalID(ctx context.Context, tenant, typ, ext string) error {
	err := s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("DELETE FROM external_ids WHERE tenant = ? AND type = ? AND external_id = ?", tenant, typ, ext)
	})
	if err != nil {
		return fmt.Errorf("delete external id %s %s: %w", typ, ext, err)
	}
	return nil
}

// UpdateFragmentsMany merges fragments into many objects of one tenant
// in one change, as UpdateFragments does each. Objects that do not
// exist are skipped; their ids are returned.
func (s *Store) UpdateFragmentsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error) {
	return s.updateMany(ctx, tenant, updates, checkFragments)
}

// UpdateFieldsMany sets single fields of fragments in many objects of
// one tenant, keyed "fragment.field" (a fragment that is not there is
// created), leaving the fragments' other fields as they are: what a
// writer that read a fragment earlier must use, so that it cannot undo
// a change made meanwhile to a field it does not set. Objects that do
// not exist are skipped; their ids are returned.
func (s *Store) UpdateFieldsMany(ctx context.Context, tenant string, updates map[string]map[string]any) (missing []string, err error) {
	return s.updateMany(ctx, tenant, updates, checkFields)
}

func (s *Store) updateMany(ctx context.Context, tenant string, updates map[string]map[string]any, check func(map[string]any) error) ([]string, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	u, err := checkUpdates(updates, check)
	if err != nil {
		return nil, err
	}
	var missing []string
	err = s.db.Write(ctx, func(tx *Tx) error {
		var err error
		missing, err = u.apply(tx, tenant)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update fragments of %d objects: %w", len(u.ids), err)
	}
	return missing, nil
}

// objectUpdates are the checked updates of many objects of a tenant,
// ready to be applied in a change: their statements are made outside the
// writer, which runs one change at a time.
type objectUpdates struct {
	ids  []string // in order: concurrent changes lock rows alike
	sets []string // the SET clause of ids[i]'s update (mergeSQL)
	args [][]any  // its arguments, the object's key to append
}

// checkUpdates checks every object's update with check and encodes it,
// outside the writer.
func checkUpdates(updates map[string]map[string]any, check func(map[string]any) error) (objectUpdates, error) {
	u := objectUpdates{ids: slices.Sorted(maps.Keys(updates))}
	u.sets, u.args = make([]string, len(u.ids)), make([][]any, len(u.ids))
	now := nowMilli()
	for i, id := range u.ids {
		if err := check(updates[id]); err != nil {
			return objectUpdates{}, fmt.Errorf("update fragments of %s: %w", id, err)
		}
		sets, args, err := mergeSQL(updates[id], false, now)
		if err != nil {
			return objectUpdates{}, fmt.Errorf("update fragments of %s: %w", id, err)
		}
		u.sets[i], u.args[i] = "UPDATE managed_objects SET "+sets+" WHERE tenant = ? AND id = ?", args
	}
	return u, nil
}

// apply merges the updates in tx and returns the ids of the objects that
// do not exist, which it skips.
func (u objectUpdates) apply(tx *Tx, tenant string) ([]string, error) {
	var missing []string
	for i, id := range u.ids {
		err := tx.execOne(u.sets[i], append(u.args[i], tenant, id)...)
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update fragments of %s: %w", id, err)
		}
	}
	return missing, nil
}

// ListManagedObjects lists the tenant's objects of f.Type, with the
// fragment (or "fragment.field") f.FragmentType, and that f.Query
// selects (query.go), in the order of $orderby and then of their ids.
// total is -1 unless f.Page.WithTotal.
func (s *Store) ListManagedObjects(ctx context.Context, tenant string, f store.ManagedObjectFilter) ([]store.ManagedObject, int64, error) {
	q, err := listObjects(tenant, f)
	if err != nil {
		return nil, 0, err
	}
	return readPage(ctx, s.db, "managed objects", q, f.Page, func(row scanner) (store.ManagedObject, error) { return readMO(row, "") })
}

// listObjects builds the statements of ListManagedObjects. Their text
// depends on the query: they are prepared for their one use rather than
// kept (pageQuery.once).
func listObjects(tenant string, f store.ManagedObjectFilter) (pageQuery, error) {
	var where sqlQuery
	where.sql("o.tenant = ")
	where.arg(tenant)
	if f.Type != "" {
		where.sql(" AND o.type = ")
		where.arg(f.Type)
	}
	if f.FragmentType != "" {
		if strings.Contains(f.FragmentType, `"`) {
			return pageQuery{}, fmt.Errorf("%w: fragment type %q", store.ErrInvalid, f.FragmentType)
		}
		where.sql(" AND json_type(o.fragments, ")
		where.arg(path(f.FragmentType))
		where.sql(") IS NOT NULL")
	}
	var q store.Query
	if strings.TrimSpace(f.Query) != "" {
		var err error
		if q, err = store.ParseQuery(f.Query); err != nil {
			return pageQuery{}, err
		}
		if q.Where != nil {
			where.sql(" AND ")
			if err := where.where(*q.Where); err != nil {
				return pageQuery{}, err
			}
		}
	}
	var list sqlQuery
	list.sql("SELECT ", moColumnsOf("o"), " FROM managed_objects o WHERE ", where.b.String(), " ORDER BY ")
	list.args = slices.Clone(where.args)
	list.orderBy(q.OrderBy)
	return pageQuery{
		list: list.b.String(), listArgs: list.args,
		count: "SELECT count(*) FROM managed_objects o WHERE " + where.b.String(), countArgs: where.args,
		once: true,
	}, nil
}
