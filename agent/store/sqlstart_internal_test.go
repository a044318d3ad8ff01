package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// What the start reads from the SQLite file is what FerretDB answers: an
// operation a crash left out of its device's queue is queued again when
// the store opens, the operations left EXECUTING are found in creation
// order, and the devices with queued operations are those whose queue
// lists a PENDING one.
func TestStartReadsFromSQLite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string]string{}
	for _, ep := range []string{"busy", "done", "idle"} {
		if devs[ep], err = s.CreateDevice(ctx, "acme", ep); err != nil {
			t.Fatal(err)
		}
	}
	var ops []Operation
	for _, text := range []string{"read /3/0/0", "read /3/0/1", "execute /3/0/4", "read /3/0/2"} {
		ops = append(ops, Operation{DeviceID: devs["busy"], HasCommand: true, Text: text})
	}
	ops = append(ops, Operation{DeviceID: devs["done"], HasCommand: true, Text: "read /3/0/0"})
	if ops, err = s.CreateOperations(ctx, "acme", ops); err != nil {
		t.Fatal(err)
	}
	// the execute and the last read were sent when the agent died; the
	// other device's one operation ended
	for _, i := range []int{3, 2} {
		if err := s.SetStatus(ctx, "acme", ops[i].ID, OpExecuting, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetStatus(ctx, "acme", ops[4].ID, OpSuccessful, "", ""); err != nil {
		t.Fatal(err)
	}
	// a crash between storing the second read and queueing it
	if _, err := s.opQueues.UpdateOne(ctx, bson.D{{Key: "_id", Value: key("acme", devs["busy"])}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "ids", Value: ops[1].ID}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if s, err = Open(ctx, Config{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if s.sqlx == nil {
		t.Fatal("embedded store without its SQLite reader")
	}
	var fromSQL, fromFerret []string
	for _, viaSQL := range []bool{true, false} {
		sqlx := s.sqlx
		if !viaSQL {
			s.sqlx = nil // what FerretDB answers
		}
		pending, err := s.Pending(ctx, "acme", devs["busy"], 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, op := range pending {
			got = append(got, "pending "+op.Text)
		}
		executing, err := s.Executing(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range executing {
			got = append(got, "executing "+op.Text)
		}
		if err := s.QueuedDevices(ctx, func(tenant, device string) error {
			got = append(got, "queued "+tenant+"/"+device)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if one, err := s.Executing(ctx, 1); err != nil || len(one) != 1 || one[0].ID != ops[2].ID {
			t.Errorf("first executing operation (sql %v): %+v %v, want %s", viaSQL, one, err, ops[2].ID)
		}
		s.sqlx = sqlx
		if viaSQL {
			fromSQL = got
		} else {
			fromFerret = got
		}
	}
	want := []string{
		"pending read /3/0/0", "pending read /3/0/1",
		"executing execute /3/0/4", "executing read /3/0/2",
		"queued acme/" + devs["busy"],
	}
	if !slices.Equal(fromSQL, want) {
		t.Errorf("from SQLite: %q, want %q", fromSQL, want)
	}
	if !slices.Equal(fromFerret, want) {
		t.Errorf("from FerretDB: %q, want %q", fromFerret, want)
	}
}
