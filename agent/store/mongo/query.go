package mongo

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// queryFilter renders a parsed query's filter for MongoDB.
func queryFilter(n store.QueryNode) bson.D {
	list := func() bson.A {
		a := make(bson.A, len(n.Nodes))
		for i, c := range n.Nodes {
			a[i] = queryFilter(c)
		}
		return a
	}
	switch n.Kind {
	case store.QueryAnd:
		return bson.D{{Key: "$and", Value: list()}}
	case store.QueryOr:
		return bson.D{{Key: "$or", Value: list()}}
	case store.QueryNot:
		return bson.D{{Key: "$nor", Value: list()}}
	case store.QueryHas:
		return bson.D{{Key: n.Field, Value: bson.D{{Key: "$exists", Value: true}}}}
	}
	if n.Wildcard {
		pattern := store.WildcardPattern(n.Value.(string))
		if n.Op == "ne" {
			return bson.D{{Key: n.Field, Value: bson.D{{Key: "$not", Value: bson.Regex{Pattern: pattern}}}}}
		}
		return bson.D{{Key: n.Field, Value: bson.D{{Key: "$regex", Value: pattern}}}}
	}
	mop := map[string]string{"eq": "$eq", "ne": "$ne", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte"}[n.Op]
	return bson.D{{Key: n.Field, Value: bson.D{{Key: mop, Value: n.Value}}}}
}

// querySort renders a parsed query's $orderby for MongoDB.
func querySort(order []store.QueryOrder) bson.D {
	var sort bson.D
	for _, o := range order {
		dir := 1
		if o.Desc {
			dir = -1
		}
		sort = append(sort, bson.E{Key: o.Field, Value: dir})
	}
	return sort
}
