package shell

import (
	"net/url"
	"strings"
	"unicode"
)

// firmwareSchemes are the Package URI schemes of LwM2M firmware update
// (Core 1.1, object 5, resource 1) and the ones HTTP clients pull from.
var firmwareSchemes = []string{"http", "https", "coap", "coaps", "coap+tcp", "coaps+tcp"}

// parseFirmware reads "name;version;url" or "/name/version/url/".
func (c *Command) parseFirmware(rest string) *Error {
	const usage = "fwupdate <name>;<version>;<url> (or /<name>/<version>/<url>/)"
	var parts []string
	if strings.HasPrefix(rest, "/") {
		parts = strings.SplitN(strings.TrimSuffix(rest[1:], "/"), "/", 3)
	} else {
		parts = strings.SplitN(rest, ";", 3)
	}
	if len(parts) < 3 {
		return errorf("fwupdate: name, version and URL are needed: %s", usage)
	}
	fw := Firmware{Name: strings.TrimSpace(parts[0]), Version: strings.TrimSpace(parts[1]), URL: strings.TrimSpace(parts[2])}
	switch {
	case fw.Name == "":
		return errorf("fwupdate: the firmware name is empty: %s", usage)
	case fw.Version == "":
		return errorf("fwupdate: the firmware version is empty: %s", usage)
	case fw.URL == "":
		return errorf("fwupdate: the URL is empty: %s", usage)
	case strings.Contains(fw.Name, ";") || strings.Contains(fw.Version, ";"):
		return errorf("fwupdate: a firmware name or version cannot contain ';'")
	case strings.IndexFunc(fw.URL, unicode.IsSpace) >= 0:
		return errorf("fwupdate: URL %q contains white space", clip(fw.URL))
	}
	if id, ok := cutPrefixFold(fw.URL, "binary:"); ok {
		// a binary stored in the agent, which serves or pushes it
		if id == "" || strings.Trim(id, "0123456789") != "" {
			return errorf("fwupdate: %q: binary: needs the ID of a stored binary (digits)", clip(fw.URL))
		}
		c.Firmware = fw
		return nil
	}
	u, err := url.Parse(fw.URL)
	if err != nil || u.Host == "" || !isFirmwareScheme(u.Scheme) {
		return errorf("fwupdate: %q is not a firmware URL; it must be binary:<id> or absolute with scheme %s", clip(fw.URL), strings.Join(firmwareSchemes, ", "))
	}
	c.Firmware = fw
	return nil
}

func isFirmwareScheme(s string) bool {
	s = strings.ToLower(s)
	for _, k := range firmwareSchemes {
		if s == k {
			return true
		}
	}
	return false
}

// String returns the command in canonical form: lower-case command word,
// canonical paths, one space between parts, attributes in a fixed order,
// JSON compact with sorted keys, firmware as name;version;url. Parsing it
// gives the same command (Raw aside).
func (c Command) String() string {
	var b strings.Builder
	b.WriteString(c.Kind.String())
	sp := func(s string) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	for _, p := range c.Paths {
		if c.Kind == CompositeWrite {
			break // the paths are the JSON's keys
		}
		sp(p.String())
	}
	switch c.Kind {
	case Execute:
		if c.Args != "" {
			sp(c.Args)
		}
	case Write:
		sp(c.Value)
	case Create:
		if c.JSON != nil {
			sp(encodeJSON(c.JSON))
		}
	case CompositeWrite:
		sp(encodeJSON(c.JSON))
	case WriteAttributes:
		sp(strings.Join(c.Attrs.Query(), "&"))
	case WriteBinary:
		if c.Binary != "" {
			sp("binary:" + c.Binary)
		} else {
			sp(c.Value)
		}
	case Serialization:
		sp(c.Format)
	case FirmwareUpdate:
		sp(c.Firmware.Name + ";" + c.Firmware.Version + ";" + c.Firmware.URL)
	}
	return b.String()
}

// Equal reports whether two commands mean the same, ignoring Raw.
func (c Command) Equal(d Command) bool {
	c.Raw, d.Raw = "", ""
	return c.String() == d.String() && c.Kind == d.Kind
}
