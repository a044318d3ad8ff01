package store

import "time"

// ResourceValue is the last known value of a resource (or resource
// instance) of a device. Value is a plain Go value (node.Value.Interface);
// Type is the node.Type name ("FLOAT").
type ResourceValue struct {
	Path  string    `bson:"p"`
	Value any       `bson:"v"`
	Type  string    `bson:"y"`
	Time  time.Time `bson:"t"`
}
