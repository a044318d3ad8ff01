package codec

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// testTypes is the object model of the examples in the LwM2M
// specifications: Server (1), Access Control (2), Device (3), the object
// link test objects 65 and 66, Temperature (3303) and a test object 1024.
var testTypes = node.ResolverFunc(func(p node.Path) (node.Type, bool) {
	t, ok := testModel[p.Object][p.Resource]
	return t, ok
})

var testModel = map[uint16]map[uint16]node.Type{
	1: {0: node.TypeInteger, 1: node.TypeInteger, 2: node.TypeInteger, 3: node.TypeInteger, 5: node.TypeInteger, 6: node.TypeBoolean, 7: node.TypeString},
	2: {0: node.TypeInteger, 1: node.TypeInteger, 2: node.TypeInteger, 3: node.TypeInteger},
	3: {0: node.TypeString, 1: node.TypeString, 2: node.TypeString, 3: node.TypeString,
		6: node.TypeInteger, 7: node.TypeInteger, 8: node.TypeInteger, 9: node.TypeInteger, 10: node.TypeInteger,
		11: node.TypeInteger, 13: node.TypeTime, 14: node.TypeString, 15: node.TypeString, 16: node.TypeString,
		17: node.TypeString, 18: node.TypeString, 19: node.TypeString, 21: node.TypeInteger},
	5:    {0: node.TypeOpaque, 1: node.TypeString, 3: node.TypeInteger, 5: node.TypeInteger},
	65:   {0: node.TypeObjlnk, 1: node.TypeString, 2: node.TypeInteger},
	66:   {0: node.TypeString, 1: node.TypeString, 2: node.TypeObjlnk},
	1024: {0: node.TypeString, 1: node.TypeFloat, 2: node.TypeBoolean, 3: node.TypeUnsignedInteger, 4: node.TypeCorelnk},
	3303: {5700: node.TypeFloat, 5701: node.TypeString, 5601: node.TypeFloat, 5602: node.TypeFloat, 5518: node.TypeTime},
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

func rec(path string, v node.Value) node.Record {
	return node.Record{Path: node.MustParsePath(path), Value: v}
}

func trec(path string, v node.Value, unix float64) node.Record {
	t, _ := secondsTime(unix)
	return node.Record{Path: node.MustParsePath(path), Value: v, Time: t}
}

// deviceRecords are the values of the Device object instance example of
// the Core specification (TS 1.0.2 section 6.4.3.1, TS 1.1 section 7.4).
func deviceRecords() []node.Record {
	return []node.Record{
		rec("/3/0/0", node.String("Open Mobile Alliance")),
		rec("/3/0/1", node.String("Lightweight M2M Client")),
		rec("/3/0/2", node.String("345000123")),
		rec("/3/0/3", node.String("1.0")),
		rec("/3/0/6/0", node.Int(1)),
		rec("/3/0/6/1", node.Int(5)),
		rec("/3/0/7/0", node.Int(3800)),
		rec("/3/0/7/1", node.Int(5000)),
		rec("/3/0/8/0", node.Int(125)),
		rec("/3/0/8/1", node.Int(900)),
		rec("/3/0/9", node.Int(100)),
		rec("/3/0/10", node.Int(15)),
		rec("/3/0/11/0", node.Int(0)),
		rec("/3/0/13", node.TimeValue(time.Unix(1367491215, 0).UTC())),
		rec("/3/0/14", node.String("+02:00")),
		rec("/3/0/16", node.String("U")),
	}
}

// timeTolerance absorbs the nanoseconds that float seconds cannot hold.
const timeTolerance = time.Microsecond

func recordsEqual(a, b []node.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !valueEqual(a[i].Value, b[i].Value) {
			return false
		}
		d := a[i].Time.Sub(b[i].Time)
		if a[i].Time.IsZero() != b[i].Time.IsZero() || d > timeTolerance || d < -timeTolerance {
			return false
		}
	}
	return true
}

func valueEqual(a, b node.Value) bool {
	if a.Type == node.TypeTime && b.Type == node.TypeTime {
		d := a.Time.Sub(b.Time)
		return d <= timeTolerance && d >= -timeTolerance
	}
	return a.Equal(b)
}

func assertRecords(t *testing.T, got, want []node.Record) {
	t.Helper()
	if !recordsEqual(got, want) {
		t.Errorf("records differ\n got: %s\nwant: %s", dump(got), dump(want))
	}
}

func dump(rs []node.Record) string {
	var sb strings.Builder
	for _, r := range rs {
		sb.WriteString("\n  " + r.Path.String() + " " + r.Value.Type.String() + " " + r.Value.Text())
		if !r.Time.IsZero() {
			sb.WriteString(" @" + r.Time.Format(time.RFC3339Nano))
		}
	}
	return sb.String()
}

// pinNow fixes the clock that relative SenML times count from.
func pinNow(t testing.TB, at time.Time) {
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}
