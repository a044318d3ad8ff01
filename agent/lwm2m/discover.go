package lwm2m

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Discover returns the links the device reports for p (Discover
// operation: GET with Accept application/link-format): the instances and
// resources below p with their attributes.
func (s *Server) Discover(ctx context.Context, ep string, p node.Path) ([]codec.Link, error) {
	t, err := s.target(ep)
	if err != nil {
		return nil, err
	}
	a, err := s.getContent(ctx, t, p, codec.LinkFmt)
	if err != nil {
		return nil, fmt.Errorf("discover %s of %s: %w", p, ep, err)
	}
	links, err := codec.ParseLinks(a.body)
	if err != nil {
		s.stats.decodeErrs.Add(1)
		return nil, fmt.Errorf("discover %s of %s: %w", p, ep, err)
	}
	return links, nil
}
