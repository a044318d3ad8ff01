package mapping

import (
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Template fields of event and alarm texts. A text names them in braces,
// "Door is {value}"; a name that is not one of these is kept as written.
//
//	{value}     the value: numbers as sent, booleans true/false, times RFC 3339, opaque bytes hex
//	{path}      the resource path, /3303/0/5700 (with the resource instance when there is one)
//	{object}    the object ID, 3303
//	{instance}  the object instance ID, 0
//	{resource}  the resource ID, 5700
//	{endpoint}  the device's LwM2M endpoint name
//	{device}    the device's managed object ID
//	{time}      the value's time, RFC 3339 in UTC
var TemplateFields = []string{"value", "path", "object", "instance", "resource", "endpoint", "device", "time"}

// textContext is what a template can name.
type textContext struct {
	value    node.Value
	path     node.Path
	endpoint string
	device   string
	time     time.Time
}

// expand fills a template's fields.
func expand(tmpl string, c textContext) string {
	if strings.IndexByte(tmpl, '{') < 0 {
		return tmpl
	}
	var b strings.Builder
	b.Grow(len(tmpl) + 16)
	for {
		open := strings.IndexByte(tmpl, '{')
		if open < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		end := strings.IndexByte(tmpl[open:], '}')
		if end < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		end += open
		b.WriteString(tmpl[:open])
		if s, ok := c.field(tmpl[open+1 : end]); ok {
			b.WriteString(s)
		} else {
			b.WriteString(tmpl[open : end+1])
		}
		tmpl = tmpl[end+1:]
	}
}

func (c textContext) field(name string) (string, bool) {
	id := func(v uint16) string { return strconv.FormatUint(uint64(v), 10) }
	switch name {
	case "value":
		return Text(c.value), true
	case "path":
		return c.path.String(), true
	case "object":
		return id(c.path.Object), true
	case "instance":
		return id(c.path.Instance), true
	case "resource":
		return id(c.path.Resource), true
	case "endpoint":
		return c.endpoint, true
	case "device":
		return c.device, true
	case "time":
		return c.time.UTC().Format(time.RFC3339Nano), true
	}
	return "", false
}
