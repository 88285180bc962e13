package main

import (
	"testing"
)

// TestRevokeSessionOnAIsRefusedOnB: a session revoked through one replica
// is refused by another without waiting for the purge cycle.
func TestRevokeSessionOnAIsRefusedOnB(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start(t, nil), c.start(t, nil)
	first := registerAt(t, a, "ada@example.com", "password1")
	second := loginAt(t, b, "ada@example.com", "password1")
	if code, msg := meError(t, b, first.Access); code != "" {
		t.Fatalf("me at B before the revocation: %s %s", code, msg)
	}
	r := postGraphQL(t, a, map[string]string{"Authorization": bearer(second.Access)},
		`mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sid(t, first.Access)}).OK(t)
	if r.Get("revokeSession") != true {
		t.Fatalf("revokeSession = %v", r.Get("revokeSession"))
	}
	waitRevoked(t, b, first.Access)
}
