package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked: another process has the store open.
var ErrLocked = errors.New("sqlite: store is in use by another process")

// lockDir takes the store directory for this process: two agents on one
// data directory would each serve devices from one file and repair what
// they take for the other's leftovers. SQLite's own locks keep the file
// consistent, not the agents' view of it. The lock is an flock, released
// by the kernel when the process dies, so a crash never leaves it held.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "unknown"
			}
			return nil, fmt.Errorf("%w: %s is held by process %s; stop that agent, or give this one another --data-dir", ErrLocked, dir, pid)
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	// the holder's pid, for the message above; a failure to write it
	// costs only that message
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
