// Command mongotest serves a MongoDB-wire server (FerretDB over SQLite,
// the MongoDB engine's test server) in a directory until interrupted, so
// that the benches can measure the agent's MongoDB engine with
// LWM2M_AGENT_MONGO_URI:
//
//	go run ./agent/bench/cmd/mongotest > /tmp/mongo.uri &
//	LWM2M_AGENT_MONGO_URI=$(cat /tmp/mongo.uri) make bench-reg
//
// It prints the URI (a free loopback port) on standard output once the
// server listens. A real
// MongoDB deployment is what production runs; this one is what the
// machine has.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
)

func main() {
	dir := flag.String("dir", "", "directory of the server's SQLite files (default: a new temporary one)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "mongotest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "mongotest:", err)
			os.Exit(1)
		}
		*dir = d
	}
	uri, stop, err := ferrettest.Run(*dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongotest:", err)
		os.Exit(1)
	}
	defer stop()
	fmt.Println(strings.TrimSpace(uri))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
}
