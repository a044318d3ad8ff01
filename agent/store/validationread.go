package store

import (
	"context"
	"fmt"
)

// ValidationRules returns the validation rules of one resource of the
// protocol that applies to the tenant (see Protocol); empty rules when the
// resource has none or nobody defines the object. Like Functionalities it
// is meant to be asked per write and answers from memory after the first
// call per object. The rules are shared: do not change them.
func (ps *Protocols[F]) ValidationRules(ctx context.Context, tenant string, objectID, resourceID uint16) (ValidationRules, error) {
	p, err := ps.effectiveProtocol(ctx, tenant, objectID)
	if err != nil {
		return ValidationRules{}, fmt.Errorf("protocol %d: %w", objectID, err)
	}
	if p == nil {
		return ValidationRules{}, nil
	}
	return p.Validation[resourceID], nil
}
