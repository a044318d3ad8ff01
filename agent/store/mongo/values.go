package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A device's last values live in one document, a member per path, so
// saving them is one upsert by _id and reading them one lookup.
type valuesDoc struct {
	Tenant   string                         `bson:"tenant"`
	DeviceID string                         `bson:"deviceId"`
	V        map[string]store.ResourceValue `bson:"v"`
}

// valueKey turns "/3/0/1" into a member name without '.' or '$'.
func valueKey(path string) (string, error) {
	p, err := node.ParsePath(path)
	if err != nil || p.Depth == 0 {
		return "", fmt.Errorf("%w: value path %q", store.ErrInvalid, path)
	}
	return strings.ReplaceAll(strings.TrimPrefix(p.String(), "/"), "/", "_"), nil
}

// SaveValues records the last known values of a device, replacing older
// ones of the same paths. A value older than the stored one still
// replaces it: the caller delivers values in the order the device sent
// them.
func (s *Store) SaveValues(ctx context.Context, tenant, deviceID string, vals []store.ResourceValue) error {
	if len(vals) == 0 {
		return nil
	}
	set := bson.D{{Key: "tenant", Value: tenant}, {Key: "deviceId", Value: deviceID}}
	at := map[string]int{} // a path given twice keeps its last value
	for _, v := range vals {
		k, err := valueKey(v.Path)
		if err != nil {
			return err
		}
		if v.Time.IsZero() {
			v.Time = now()
		}
		v.Time = v.Time.UTC().Truncate(time.Millisecond)
		if i, ok := at[k]; ok {
			set[i].Value = v
			continue
		}
		at[k] = len(set)
		set = append(set, bson.E{Key: "v." + k, Value: v})
	}
	_, err := s.values.UpdateOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}},
		bson.D{{Key: "$set", Value: set}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save %d values of %s: %w", len(vals), deviceID, err)
	}
	return nil
}

// Values returns the last known values of a device, sorted by path.
func (s *Store) Values(ctx context.Context, tenant, deviceID string) ([]store.ResourceValue, error) {
	var d valuesDoc
	err := s.values.FindOne(ctx, bson.D{{Key: "_id", Value: key(tenant, deviceID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read values of %s: %w", deviceID, err)
	}
	out := make([]store.ResourceValue, 0, len(d.V))
	for _, v := range d.V {
		v.Value = Plain(v.Value)
		v.Time = v.Time.UTC()
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b store.ResourceValue) int { return comparePaths(a.Path, b.Path) })
	return out, nil
}

func comparePaths(a, b string) int {
	pa, errA := node.ParsePath(a)
	pb, errB := node.ParsePath(b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return slices.Compare(pa.IDs(), pb.IDs())
}
