// Package plugins is the agent's side of its plugins: it reads their
// declarations (Config), starts plugin programs through go-plugin and keeps
// them running (restarting a crashed or hung one with a bounded
// exponential backoff), dials decoder services by gRPC address, calls
// Cumulocity-style HTTP decoders, and counts every call.
//
// Callers use a Host: Map, Run, Decode and DecodeBatch call the plugin of
// the given name with a per-call timeout. An error for which IsRetryable
// is true means the plugin could not answer now (down, restarting, timed
// out, temporarily failing): the caller keeps the input and tries again
// later, so nothing is lost while a plugin restarts. Other errors mean the
// input or the plugin's answer is bad, and retrying will not help.
package plugins
