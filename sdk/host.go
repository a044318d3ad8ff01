package sdk

import (
	"os"
	"time"
)

// ExitWithHost ends this plugin process once the agent that started it
// is gone. go-plugin serves until the host tells it to stop, so a plugin
// whose agent was killed (SIGKILL, a crash, the OOM killer) would live on,
// orphaned, holding its memory and sockets; the agent started again
// starts plugins of its own. The plugin's parent changes when its agent
// dies (it is adopted by init or a subreaper), which is what is watched.
// The serving helpers of this package call it; a plugin that calls
// go-plugin's Serve itself may call it first.
func ExitWithHost() {
	parent := os.Getppid()
	// lives as long as the process: there is nothing to stop it for
	go func() {
		for {
			time.Sleep(500 * time.Millisecond)
			if os.Getppid() != parent {
				os.Exit(0)
			}
		}
	}()
}
