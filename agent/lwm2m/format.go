package lwm2m

import "github.com/lwm2m-agent/lwm2m-agent/agent/codec"

// preferredFormat picks the content format for reading from and writing to
// a device: the one it declared in its registration when that format can
// carry objects and instances, else TLV for LwM2M 1.0 and 1.1 (mandatory
// for 1.0 clients and the common ground of 1.1 ones) and SenML CBOR for
// 1.2, which deprecates TLV.
func preferredFormat(version string, declared codec.Format) codec.Format {
	switch declared {
	case codec.TLV, codec.SenMLCBOR, codec.SenMLJSON, codec.LwM2MJSON:
		return declared
	case codec.OldTLV:
		return codec.TLV
	case codec.OldJSON:
		return codec.LwM2MJSON
	}
	if version == "1.2" {
		return codec.SenMLCBOR
	}
	return codec.TLV
}
