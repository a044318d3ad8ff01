// Package e2e holds the end-to-end tests: the whole agent (embedded store,
// LwM2M server on a loopback UDP port, REST API) started in-process, driven
// through its public HTTP API, with simulated devices on real sockets.
package e2e
