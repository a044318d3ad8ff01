package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A child reference is one document, keyed by tenant, kind, parent and
// child, so that adding one twice is one document; seq, a number of
// the shared sequence, orders a parent's children as they were added.
type refDoc struct {
	Key    string `bson:"_id"`
	Tenant string `bson:"tenant"`
	Kind   string `bson:"kind"`
	Parent string `bson:"parent"`
	Child  string `bson:"child"`
	Seq    int64  `bson:"seq"`
}

func refKey(tenant, kind, parent, child string) string {
	return key(tenant, kind+"/"+url.PathEscape(parent)+"/"+url.PathEscape(child))
}

// AddChildReference makes child a child of parent by kind, once.
func (s *Store) AddChildReference(ctx context.Context, tenant, kind, parent, child string) error {
	if !slices.Contains(store.ReferenceKinds, kind) {
		return fmt.Errorf("%w: reference kind %q", store.ErrInvalid, kind)
	}
	if parent == child {
		return fmt.Errorf("%w: managed object %s cannot be its own child", store.ErrInvalid, parent)
	}
	for _, id := range []string{parent, child} {
		var d struct{}
		if err := findKey(ctx, s.objects, tenant, id, &d); err != nil {
			return fmt.Errorf("add %s %s to %s: managed object %s: %w", kind, child, parent, id, err)
		}
	}
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return err
	}
	k := refKey(tenant, kind, parent, child)
	// $setOnInsert: a reference added again keeps its place.
	_, err = s.childRefs.UpdateOne(ctx, bson.D{{Key: "_id", Value: k}},
		bson.D{{Key: "$setOnInsert", Value: refDoc{Key: k, Tenant: tenant, Kind: kind, Parent: parent, Child: child, Seq: ids[0]}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil && !isDup(err) {
		return fmt.Errorf("add %s %s to %s: %w", kind, child, parent, err)
	}
	return nil
}

// RemoveChildReference removes the reference; ErrNotFound if none.
func (s *Store) RemoveChildReference(ctx context.Context, tenant, kind, parent, child string) error {
	res, err := s.childRefs.DeleteOne(ctx, bson.D{{Key: "_id", Value: refKey(tenant, kind, parent, child)}})
	if err != nil {
		return fmt.Errorf("remove %s %s of %s: %w", kind, child, parent, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("remove %s %s of %s: %w", kind, child, parent, store.ErrNotFound)
	}
	return nil
}

// ListChildren lists parent's children by kind, as objects, in the
// order they were added. A reference whose child is gone (a deletion
// cut short) is left out.
func (s *Store) ListChildren(ctx context.Context, tenant, kind, parent string, p store.Page) ([]store.ManagedObject, int64, error) {
	var refs []refDoc
	total, err := s.findPage(ctx, s.childRefs,
		bson.D{{Key: "tenant", Value: tenant}, {Key: "kind", Value: kind}, {Key: "parent", Value: parent}},
		bson.D{{Key: "seq", Value: 1}}, p, &refs)
	if err != nil {
		return nil, 0, err
	}
	keys := make(bson.A, len(refs))
	for i, r := range refs {
		keys[i] = key(tenant, r.Child)
	}
	out := []store.ManagedObject{}
	if len(refs) == 0 {
		return out, total, nil
	}
	cur, err := s.objects.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, 0, fmt.Errorf("list %s of %s: %w", kind, parent, err)
	}
	var docs []map[string]any
	if err := cur.All(ctx, &docs); err != nil {
		return nil, 0, fmt.Errorf("list %s of %s: %w", kind, parent, err)
	}
	byID := make(map[string]store.ManagedObject, len(docs))
	for _, d := range docs {
		mo := moFromDoc(d)
		byID[mo.ID] = mo
	}
	for _, r := range refs {
		if mo, ok := byID[r.Child]; ok {
			out = append(out, mo)
		}
	}
	return out, total, nil
}

// ParentsOf lists the objects child is a child of by kind.
func (s *Store) ParentsOf(ctx context.Context, tenant, kind, child string, limit int) ([]string, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.childRefs.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "child", Value: child}, {Key: "kind", Value: kind}}, opts)
	if err != nil {
		return nil, fmt.Errorf("parents of %s: %w", child, err)
	}
	var refs []refDoc
	if err := cur.All(ctx, &refs); err != nil {
		return nil, fmt.Errorf("parents of %s: %w", child, err)
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Parent
	}
	return out, nil
}

// deleteReferencesOf removes the references from and to an object that
// is being deleted.
func (s *Store) deleteReferencesOf(ctx context.Context, tenant, id string) error {
	for _, f := range []bson.D{
		{{Key: "tenant", Value: tenant}, {Key: "child", Value: id}},
		{{Key: "tenant", Value: tenant}, {Key: "kind", Value: bson.D{{Key: "$in", Value: store.ReferenceKinds}}}, {Key: "parent", Value: id}},
	} {
		if _, err := s.childRefs.DeleteMany(ctx, f); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("delete references of %s: %w", id, err)
		}
	}
	return nil
}

// AllReferences returns id's children and parents of every kind. One
// find reads the references both ways in their order: FerretDB has
// neither $facet nor $lookup, so a limit per kind cannot be a stage,
// and the find is bounded by limit of each instead; an object that has
// more than that (a big group) is read kind by kind. The children's
// names are a second find, for objects that have children.
func (s *Store) AllReferences(ctx context.Context, tenant, id string, limit int) (store.ObjectReferences, error) {
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: 1}})
	bound := int64(2*len(store.ReferenceKinds)*limit + 1)
	if limit > 0 {
		opts.SetLimit(bound)
	}
	cur, err := s.childRefs.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "kind", Value: bson.D{{Key: "$in", Value: store.ReferenceKinds}}}, {Key: "parent", Value: id}},
		bson.D{{Key: "child", Value: id}},
	}}}, opts)
	if err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	var refs []refDoc
	if err := cur.All(ctx, &refs); err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	if limit > 0 && int64(len(refs)) == bound {
		return s.referencesByKind(ctx, tenant, id, limit)
	}
	out := store.ObjectReferences{}
	var kids bson.A
	for _, r := range refs {
		if r.Child == id && (limit <= 0 || len(out.Parents[r.Kind]) < limit) {
			out.AddParent(r.Kind, r.Parent)
		}
		if r.Parent == id {
			kids = append(kids, key(tenant, r.Child))
		}
	}
	if len(kids) == 0 {
		return out, nil
	}
	cur, err = s.objects.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: kids}}}},
		options.Find().SetProjection(bson.D{{Key: "id", Value: 1}, {Key: "name", Value: 1}}))
	if err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	var docs []struct {
		ID   string `bson:"id"`
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return store.ObjectReferences{}, fmt.Errorf("references of %s: %w", id, err)
	}
	names := make(map[string]string, len(docs))
	for _, d := range docs {
		names[d.ID] = d.Name
	}
	// a reference whose child is gone (a deletion cut short) is left
	// out, as ListChildren leaves it
	for _, r := range refs {
		if nm, ok := names[r.Child]; ok && r.Parent == id && (limit <= 0 || len(out.Children[r.Kind]) < limit) {
			out.AddChild(r.Kind, store.ReferencedObject{ID: r.Child, Name: nm})
		}
	}
	return out, nil
}

// referencesByKind is AllReferences kind by kind, for an object with
// more references than one bounded find reads.
func (s *Store) referencesByKind(ctx context.Context, tenant, id string, limit int) (store.ObjectReferences, error) {
	out := store.ObjectReferences{}
	for _, kind := range store.ReferenceKinds {
		kids, _, err := s.ListChildren(ctx, tenant, kind, id, store.Page{Size: limit})
		if err != nil {
			return store.ObjectReferences{}, err
		}
		for _, k := range kids {
			out.AddChild(kind, store.ReferencedObject{ID: k.ID, Name: k.Name})
		}
		parents, err := s.ParentsOf(ctx, tenant, kind, id, limit)
		if err != nil {
			return store.ObjectReferences{}, err
		}
		for _, p := range parents {
			out.AddParent(kind, p)
		}
	}
	return out, nil
}
