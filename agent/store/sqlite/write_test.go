package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func insert(id int) func(*Tx) error {
	return func(tx *Tx) error {
		_, err := tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", id, fmt.Sprint("v", id))
		return err
	}
}

func count(t testing.TB, db *DB) int {
	t.Helper()
	return intOf(t, db, "SELECT count(*) FROM t")
}

func has(t testing.TB, db *DB, id int) bool {
	t.Helper()
	return intOf(t, db, "SELECT count(*) FROM t WHERE id = ?", id) == 1
}

// hold occupies the writer with a change that waits for release, so that
// what is submitted meanwhile queues up and goes into the next batch.
func hold(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Write(context.Background(), func(*Tx) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	return func() {
		close(gate)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// queuedLen waits until n changes wait in the queue.
func queuedLen(t *testing.T, db *DB, n int) {
	t.Helper()
	for len(db.queue) != n {
		time.Sleep(time.Millisecond)
	}
}

func TestWriteConcurrentAllAnswered(t *testing.T) {
	db := open(t, t.TempDir(), Config{})
	const writers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := db.Write(context.Background(), insert(w*each+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := count(t, db); n != writers*each {
		t.Fatalf("%d rows, want %d", n, writers*each)
	}
	b, c := db.batches.Load(), db.changes.Load()
	t.Logf("%d changes in %d batches", c, b)
	if c != writers*each || b > c {
		t.Fatalf("%d changes in %d batches", c, b)
	}
}

func TestWriteFailingChangeAlone(t *testing.T) {
	db := open(t, t.TempDir(), Config{})
	ctx := context.Background()
	if err := db.Write(ctx, insert(1)); err != nil {
		t.Fatal(err)
	}
	release := hold(t, db)
	batches := db.batches.Load()

	// One batch: 10..14 insert, 1 conflicts with the row above, a change
	// that writes and then fails is undone to its savepoint, and one
	// panics.
	changes := map[int]func(*Tx) error{
		10: insert(10), 11: insert(11), 12: insert(1), 13: insert(13), 14: insert(14),
		15: func(tx *Tx) error {
			if err := insert(15)(tx); err != nil {
				return err
			}
			return errors.New("changed its mind")
		},
		16: func(tx *Tx) error {
			if err := insert(16)(tx); err != nil {
				return err
			}
			panic("change 16")
		},
	}
	var mu sync.Mutex
	got := map[int]any{}
	var wg sync.WaitGroup
	for k, fn := range changes {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					got[k] = p
					mu.Unlock()
				}
			}()
			err := db.Write(ctx, fn)
			mu.Lock()
			got[k] = err
			mu.Unlock()
		})
	}
	queuedLen(t, db, len(changes))
	release()
	wg.Wait()

	if b := db.batches.Load() - batches; b != 2 { // the held one and ours
		t.Fatalf("%d batches, want the held change's and one", b)
	}
	for _, k := range []int{10, 11, 13, 14} {
		if got[k] != nil || !has(t, db, k) {
			t.Errorf("change %d: %v, present %v", k, got[k], has(t, db, k))
		}
	}
	if err, _ := got[12].(error); !errors.Is(err, store.ErrConflict) {
		t.Errorf("conflicting change: %v, want store.ErrConflict", got[12])
	}
	if err, _ := got[15].(error); err == nil || err.Error() != "changed its mind" || has(t, db, 15) {
		t.Errorf("failing change: %v, present %v", got[15], has(t, db, 15))
	}
	if got[16] != "change 16" || has(t, db, 16) {
		t.Errorf("panicking change: %v, present %v", got[16], has(t, db, 16))
	}
}

func TestWriteCancelledWhileQueued(t *testing.T) {
	db := open(t, t.TempDir(), Config{})
	release := hold(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ran := false
	go func() {
		done <- db.Write(ctx, func(tx *Tx) error {
			ran = true
			return insert(1)(tx)
		})
	}()
	queuedLen(t, db, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v, want context.Canceled", err)
	}
	release()
	// A change after it is answered only once the writer has passed it.
	if err := db.Write(context.Background(), insert(2)); err != nil {
		t.Fatal(err)
	}
	if ran || has(t, db, 1) {
		t.Fatalf("a withdrawn change ran (%v) or was applied (%v)", ran, has(t, db, 1))
	}
}

func TestWriteCancelledOnceTaken(t *testing.T) {
	db := open(t, t.TempDir(), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Write(ctx, func(tx *Tx) error {
		// The writer has the change: cancelling now does not withdraw
		// it, and Write reports what became of it.
		cancel()
		return insert(1)(tx)
	})
	if err != nil || !has(t, db, 1) {
		t.Fatalf("Write: %v, present %v; want nil and the row", err, has(t, db, 1))
	}
}

func TestCloseDrains(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Config{})
	release := hold(t, db)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- db.Write(context.Background(), insert(i)) }()
	}
	queuedLen(t, db, n)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	for {
		db.mu.RLock()
		closed := db.closed
		db.mu.RUnlock()
		if closed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := db.Write(context.Background(), insert(n)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	db = open(t, dir, Config{})
	if c := count(t, db); c != n {
		t.Fatalf("%d rows after Close, want %d", c, n)
	}
}

func TestTxKeptPastItsChange(t *testing.T) {
	db := open(t, t.TempDir(), Config{})
	var kept *Tx
	if err := db.Write(context.Background(), func(tx *Tx) error {
		kept = tx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Exec("INSERT INTO t (id, v) VALUES (1, 'a')"); !errors.Is(err, errTxOver) {
		t.Fatalf("Exec on a kept Tx: %v, want errTxOver", err)
	}
}
