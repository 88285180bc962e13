// Package graph is authql's GraphQL layer: the schema, thin resolvers over
// the auth service, the @auth directive and the error presenter.
package graph

//go:generate go tool gqlgen generate

import "github.com/authql/authql/auth"

// Resolver is the root resolver and the one place dependencies enter the
// GraphQL layer.
type Resolver struct {
	Auth *auth.Service
}
