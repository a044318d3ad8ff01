// Package bench holds the load benchmarks that need a whole agent. Its
// commands build and start the real agent binary on loopback and print
// the figures of DESIGN.md's performance table: loadbench drives it with
// simulator processes, regbench with a closed loop of Registers (package
// regload) beside libcoap's resource directory, queuebench through its
// operation queue and across a restart, importbench with a bulk
// registration file, campaignbench with a firmware campaign (a bulk
// operation over a group of simulated devices, half of them sleeping),
// dtlsbench with full DTLS-PSK handshakes beside libcoap's OpenSSL server.
// docs/performance.md says what each measures.
package bench
