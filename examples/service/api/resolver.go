// Package api is the example service's GraphQL API: its schema, the
// resolvers and gqlgen's generated code, in front of authz.
package api

//go:generate go tool gqlgen generate

import "github.com/authql/authql/authz"

// Resolver is the one place the resolvers' dependencies are wired.
type Resolver struct {
	Verifier *authz.Verifier
}
