package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The child process of TestCrashKeepsAcknowledged is this test binary
// running TestHelperProcess with these set.
const (
	crashDirEnv  = "LWM2M_SQLITE_CRASH_DIR"
	crashSyncEnv = "LWM2M_SQLITE_CRASH_SYNC_NORMAL"
)

// TestHelperProcess writes rows through Write from several goroutines and
// prints "ack <id>" for each once Write has returned, until it is killed.
// It does nothing when run as a test of its own.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashKeepsAcknowledged")
	}
	db, err := Open(context.Background(), Config{
		Dir: dir, migrations: testSchema, SyncNormal: os.Getenv(crashSyncEnv) != "",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Bounded in case the parent forgets it: the parent kills it long
	// before.
	const most = 1_000_000
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				id := next.Add(1)
				if id > most {
					return
				}
				if err := db.Write(context.Background(), insert(int(id))); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	db.Close()
}

// TestCrashKeepsAcknowledged kills a writing process with SIGKILL and
// checks that every change Write acknowledged is in the store it left,
// and that the store is intact.
func TestCrashKeepsAcknowledged(t *testing.T) {
	for _, normal := range []bool{false, true} {
		t.Run(syncName(normal), func(t *testing.T) { crash(t, normal, 500) })
	}
}

func crash(t *testing.T, syncNormal bool, kill int) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if syncNormal {
		cmd.Env = append(cmd.Env, crashSyncEnv+"=1")
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	acked := map[int]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		id, err := strconv.Atoi(strings.TrimPrefix(line, "ack "))
		if err != nil || !strings.HasPrefix(line, "ack ") {
			t.Fatalf("child printed %q", line)
		}
		acked[id] = true
		if len(acked) == kill && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
		// Lines already in the pipe when it died were acknowledged as
		// well: they are read to the end.
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acknowledgements: %v\n%s", len(acked), werr, stderr.String())
	}

	db := open(t, dir, Config{})
	var check string
	if err := db.QueryRow(context.Background(), "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}
	missing := 0
	for id := range acked {
		if !has(t, db, id) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged rows are missing", missing, len(acked))
	}
	t.Logf("%d acknowledged, %d rows in the store", len(acked), count(t, db))
}

func syncName(normal bool) string {
	if normal {
		return "synchronous=NORMAL"
	}
	return "synchronous=FULL"
}
