// Package realtime serves Cumulocity's realtime notification API: Bayeux
// (CometD) at /notification/realtime, over long-polling and WebSocket,
// with the channels /measurements/{id}, /events/{id}, /alarms/{id},
// /operations/{id} and /managedobjects/{id}, {id} being a device ID or
// "*", and the agent's own /lwm2mvalues/{id}, the last known values of a
// device's resources as they are stored. Each message carries {"realtimeAction": "CREATE"|"UPDATE"|"DELETE",
// "data": the object as the REST API shows it} (for a DELETE, data is the
// id), so that Cumulocity's clients (@c8y/client's Realtime, CometD's own)
// work against the agent unchanged. docs/realtime.md is the user's guide.
//
// # Where notifications come from
//
// Hub.Wrap puts a store.Engine behind a wrapper that announces every
// change of those objects after the store has it, whoever made it: the
// API, the mapping pipeline, the operation runner, the sessions' state
// writer, the bootstrap server. Announcing never waits: the wrapper
// hands the change over to the hub's dispatcher through a bounded queue,
// without a lock and without blocking, and only when a client of the
// tenant subscribes to that kind of object. When the queue is full the
// change is lost for realtime (counted, the store has it all the same).
// What the write did not answer (an operation whose status changed, a
// device whose fragments were merged) the dispatcher reads back before
// it renders it, so the object is the one stored at that moment, which
// may already hold a later change.
//
// # Bounds
//
// Every client holds a queue of at most Limits.Queue messages (and
// queueBytes bytes); a client whose queue is full is dropped at once,
// never buffered further: its next /meta/connect is answered with an
// error and the advice to handshake again, as CometD clients expect, and
// it has lost what it missed. A client that has sent no /meta/connect for
// longer than the advice's maxInterval is removed. Clients per user and
// in all, and subscriptions per client, are bounded too; every limit is
// a setting, and what it refuses is counted in lwm2m_agent_refused_total.
// A message is encoded once and shared by the queues of all its
// recipients.
//
// # Tenants
//
// A client belongs to the user who handshook, and sees only the changes
// of that user's tenant: a subscription names a channel of its tenant,
// whatever id it gives, so that subscribing to another tenant's device
// succeeds, receives nothing and tells nothing of whether it exists.
package realtime
