package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMeFloorHandler is the me floor's own cost per request (no
// network, no client), to set beside httpapi's BenchmarkMeHandler: the
// difference in CPU and allocations is what authql adds.
func BenchmarkMeFloorHandler(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	h := meFloor(secret, 1)
	token, err := floorToken(secret, 0)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"query":"{ me { id email } }"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"email"`)) {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
