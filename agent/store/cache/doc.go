// Package cache keeps, in front of any store.Engine, the answers a
// device's exchange waits for: which device an endpoint or a PSK
// identity names, the device's registration record (keys included,
// in memory only and never logged), and whether its operation queue is
// empty. A Register, an Update or a DTLS handshake of a device seen
// recently then costs no store read; everything else passes through.
//
// # What is cached
//
//   - endpoint → (tenant, device), DeviceByEndpoint;
//   - (kind, PSK identity) → (tenant, device), DeviceByPSKIdentity;
//   - (tenant, device) → the record as DeviceSettings answers it;
//     DeviceRegistrationOf is derived from it by the contract's rule (a
//     record that is incomplete or holds neither parameters nor secrets
//     is ErrNotFound there), which both engines follow;
//   - (tenant, device) → "no PENDING operation", the answer the
//     operation runner gets at almost every wake-up (Pending). Only the
//     empty answer is kept: a queue with operations is read, and then
//     changed, anyway. PendingCount and QueueOf are not served from it:
//     they count what the queue document lists, which may name
//     operations that moved on.
//
// ErrNotFound answers are kept too (negative entries), in room of their
// own, so that a flood of unknown names cannot push the known devices
// out.
//
// # Invalidation
//
// Every write method of the contract that can change a cached answer
// drops the entries it may have changed, by key when the call names it
// (an endpoint being bound, a device's record), and by device when it
// does not (a deletion unbinds endpoints and identities the caller does
// not name): the device's generation is bumped, and every endpoint or
// identity entry naming a device of that generation's stripe is stale
// from then on.
//
// The rule that keeps a concurrent reader from caching a stale answer:
// a write invalidates AFTER the store has it (so that no reader can load
// the old value after the invalidation), and a reader fills an entry
// only if no invalidation that could cover its key happened since its
// load BEGAN. Each cache keeps a generation per stripe of keys (a fixed
// array, so it stays bounded); a reader notes its key's stripe
// generation, the cache's epoch and the device epoch before it asks the
// store, and its fill is refused if any of them moved. Without the
// check, a reader that loaded the old value just before a write and
// filled just after the write's invalidation would keep the old value
// for good (TestFillAfterInvalidationRefused shows it).
//
// # Several agents on one database
//
// A cache sees only the writes made through it. With several agents on
// one MongoDB, another agent's change (a device deleted, a key
// replaced) reaches this one's cache only when the entry expires: the
// TTL (5 s by default for MongoDB). The embedded store has one writer,
// this agent, so its entries do not expire; they are bounded by the
// size alone.
//
// # Timing
//
// The LwM2M and DTLS layers answer an unknown endpoint or identity after
// the same reads as a known one, so that the time does not tell which
// exist. With the cache, a lookup costs a store read exactly when the
// name is not in the cache, whether it exists or not: negative entries
// make a repeated unknown name as cheap as a known one, and the reads
// the session makes in place of a known device's record are keyed by
// the name looked up (session.Keys, Hooks.Authorize), so that a name
// not cached costs the same reads, known or not. What the time still
// tells is whether a name was looked up lately (within the TTL, and
// before being pushed out), by a device or by whoever probes.
package cache
