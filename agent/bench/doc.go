// Package bench holds the load benchmarks that need a whole agent: the
// loadbench command starts the real agent binary, drives it with simulator
// processes on loopback and reports the figures of DESIGN.md's performance
// table.
package bench
