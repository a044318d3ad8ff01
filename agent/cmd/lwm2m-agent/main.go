// Command lwm2m-agent is the LwM2M device-management agent: server,
// bootstrap server, REST API, importers, a shell client and a device
// simulator, in one binary.
package main

import (
	"os"

	"github.com/lwm2m-agent/lwm2m-agent/agent/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
