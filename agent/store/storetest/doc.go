// Package storetest holds the storage contract's conformance suite and
// the helpers that open real stores for other packages' tests.
//
// Every engine of agent/store proves itself against the contract by
// calling Run from a test of its own package, with a function that opens
// an empty engine and closes it when the test ends:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Engine { return openEmpty(t) })
//	}
//
// The suite reaches engines only through store.Engine: the happy path and
// the ErrNotFound, ErrConflict and ErrInvalid answers of each method, the
// order and paging of every list, atomicity under concurrent callers and
// the isolation of tenants. Durability, that a change an engine
// acknowledged survives the process being killed, needs an engine's own
// way to stop and reopen it, so each engine has its own crash test
// beside this suite.
//
// OpenTest and Proxy serve tests elsewhere that need the current store
// itself, or a database that goes away for a while.
package storetest
