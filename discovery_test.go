package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicURL: serve builds the discovery document on AUTH_PUBLIC_URL,
// and warns at start, once, when AUTH_ISSUER is not that URL (RFC 8414);
// not when it is.
func TestPublicURL(t *testing.T) {
	for _, c := range []struct {
		name, issuer string
		warnings     int
	}{
		{"IssuerDiffers", "authql", 1},
		{"IssuerIsThePublicURL", "https://auth.example.com", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			url, stop := startRunLogging(t, map[string]string{
				"DATABASE_URL": filepath.Join(t.TempDir(), "public.db"), "AUTH_PUBLIC_URL": "https://auth.example.com/",
				"AUTH_ISSUER": c.issuer,
			}, &log)
			resp, err := http.Get(url + "/.well-known/oauth-authorization-server")
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err != nil || doc["graphql_endpoint"] != "https://auth.example.com/query" || doc["issuer"] != c.issuer {
				t.Errorf("document %v (%v), want URLs on https://auth.example.com and issuer %s", doc, err, c.issuer)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(log.String(), "AUTH_ISSUER differs from AUTH_PUBLIC_URL"); n != c.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, c.warnings, log.String())
			}
		})
	}
}
