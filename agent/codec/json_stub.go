package codec

import "github.com/lwm2m-agent/lwm2m-agent/agent/node"

func decodeSenMLJSON(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	return nil, unsupported(SenMLJSON)
}
func encodeSenMLJSON(base node.Path, recs []node.Record) ([]byte, error) {
	return nil, unsupported(SenMLJSON)
}
func decodeLwM2MJSON(base node.Path, payload []byte, types node.Resolver) ([]node.Record, error) {
	return nil, unsupported(LwM2MJSON)
}
func encodeLwM2MJSON(base node.Path, recs []node.Record) ([]byte, error) {
	return nil, unsupported(LwM2MJSON)
}
