package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// sessionDoc is a DTLS session as stored: _id is its PSK identity; the
// Connection ID and the address have indexes of their own
// (ensureIndexes). Sequence numbers are 48 bits, stored as int64.
type sessionDoc struct {
	Identity   string    `bson:"_id"`
	Tenant     string    `bson:"tenant"`
	ID         string    `bson:"sid"`
	LocalCID   []byte    `bson:"localCid,omitempty"`
	PeerCID    []byte    `bson:"peerCid,omitempty"`
	Addr       string    `bson:"addr"`
	State      []byte    `bson:"state"`
	SeqBound   int64     `bson:"seqBound"`
	PeerSeq    int64     `bson:"peerSeq"`
	LastActive time.Time `bson:"lastActive"`
}

func (d sessionDoc) session() store.DTLSSession {
	return store.DTLSSession{Identity: d.Identity, Tenant: d.Tenant, ID: d.ID, LocalCID: d.LocalCID, PeerCID: d.PeerCID,
		Addr: d.Addr, State: d.State, SeqBound: uint64(d.SeqBound), PeerSeq: uint64(d.PeerSeq), LastActive: d.LastActive.UTC()}
}

// PutDTLSSession stores s as the session of s.Identity.
func (s *Store) PutDTLSSession(ctx context.Context, d store.DTLSSession) error {
	if err := d.Validate(); err != nil {
		return err
	}
	defer s.lockEmbedded(&s.objMu, "dtls/"+d.Identity)()
	doc := sessionDoc{Identity: d.Identity, Tenant: d.Tenant, ID: d.ID, LocalCID: d.LocalCID, PeerCID: d.PeerCID, Addr: d.Addr,
		State: d.State, SeqBound: int64(d.SeqBound), PeerSeq: int64(d.PeerSeq), LastActive: d.LastActive.Truncate(time.Millisecond)}
	if _, err := s.dtlsSessions.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Identity}}, doc, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put dtls session %s: %w", d.ID, err)
	}
	return nil
}

func (s *Store) findSession(ctx context.Context, filter bson.D) (store.DTLSSession, error) {
	var d sessionDoc
	err := s.dtlsSessions.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "lastActive", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.DTLSSession{}, fmt.Errorf("dtls session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.DTLSSession{}, fmt.Errorf("read dtls session: %w", err)
	}
	return d.session(), nil
}

// DTLSSessionByIdentity returns the session of identity.
func (s *Store) DTLSSessionByIdentity(ctx context.Context, identity string) (store.DTLSSession, error) {
	return s.findSession(ctx, bson.D{{Key: "_id", Value: identity}})
}

// DTLSSessionByCID returns the session of the Connection ID cid.
func (s *Store) DTLSSessionByCID(ctx context.Context, cid []byte) (store.DTLSSession, error) {
	if len(cid) == 0 {
		return store.DTLSSession{}, fmt.Errorf("dtls session: %w", store.ErrNotFound)
	}
	return s.findSession(ctx, bson.D{{Key: "localCid", Value: cid}})
}

// DTLSSessionByAddr returns the session last active at addr.
func (s *Store) DTLSSessionByAddr(ctx context.Context, addr string) (store.DTLSSession, error) {
	return s.findSession(ctx, bson.D{{Key: "addr", Value: addr}})
}

// ReserveDTLSSequence moves the bound of session id from from to to: a
// conditional update, atomic on MongoDB; on a read-modify-write server
// it is serialized within this process only.
func (s *Store) ReserveDTLSSequence(ctx context.Context, identity, id string, from, to, peerSeq uint64) error {
	if to <= from || to > store.DTLSSeqMax || peerSeq > store.DTLSSeqMax {
		return fmt.Errorf("%w: reserve dtls sequence %d to %d", store.ErrInvalid, from, to)
	}
	defer s.lockEmbedded(&s.objMu, "dtls/"+identity)()
	res, err := s.dtlsSessions.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: identity}, {Key: "sid", Value: id}, {Key: "seqBound", Value: int64(from)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seqBound", Value: int64(to)}}},
			{Key: "$max", Value: bson.D{{Key: "peerSeq", Value: int64(peerSeq)}}}})
	if err != nil {
		return fmt.Errorf("reserve dtls sequence of session %s: %w", id, err)
	}
	if res.MatchedCount == 1 {
		return nil
	}
	// Not matched: tell a moved bound from a session that is gone.
	if _, err := s.findSession(ctx, bson.D{{Key: "_id", Value: identity}, {Key: "sid", Value: id}}); err != nil {
		return fmt.Errorf("reserve dtls sequence of session %s: %w", id, err)
	}
	return fmt.Errorf("reserve dtls sequence of session %s: %w: the bound moved", id, store.ErrConflict)
}

// TouchDTLSSession records the address and last activity of session id.
func (s *Store) TouchDTLSSession(ctx context.Context, identity, id, addr string, at time.Time) error {
	defer s.lockEmbedded(&s.objMu, "dtls/"+identity)()
	res, err := s.dtlsSessions.UpdateOne(ctx, bson.D{{Key: "_id", Value: identity}, {Key: "sid", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "addr", Value: addr}, {Key: "lastActive", Value: at.Truncate(time.Millisecond)}}}})
	if err != nil {
		return fmt.Errorf("touch dtls session %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("touch dtls session %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// DeleteDTLSSession removes the tenant's session of identity.
func (s *Store) DeleteDTLSSession(ctx context.Context, tenant, identity string) (bool, error) {
	res, err := s.dtlsSessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: identity}, {Key: "tenant", Value: tenant}})
	if err != nil {
		return false, fmt.Errorf("delete dtls session: %w", err)
	}
	return res.DeletedCount > 0, nil
}
