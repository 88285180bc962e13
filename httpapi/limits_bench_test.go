package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// hostileBody is a request body of unit repeated to fill size bytes.
func hostileBody(unit string, size int) []byte {
	n := (size - len(`{"query":"{ }"}`)) / (len(unit) + 1)
	b, _ := json.Marshal(map[string]any{"query": "{" + strings.Repeat(" "+unit, n) + " }"})
	return b
}

// queryBody is the request body of query.
func queryBody(query string) []byte {
	b, _ := json.Marshal(map[string]any{"query": query})
	return b
}

// namesRepeated is a document of names response names, each selected n
// times as a and n times as b.
func namesRepeated(names, n int, a, b string) string {
	var q strings.Builder
	q.WriteString("{")
	for i := range names {
		for range n {
			fmt.Fprintf(&q, " n%d: %s n%d: %s", i, a, i, b)
		}
	}
	q.WriteString(" }")
	return q.String()
}

// serveBody sends body to h in-process and returns the response's size.
func serveBody(h http.Handler, body []byte) int {
	req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Body.Len()
}

// BenchmarkHostileDocuments is the server's own cost (CPU time and bytes
// allocated per request, and the answer's size) of documents built to be
// expensive, with no token: the request goes straight into the handler.
func BenchmarkHostileDocuments(b *testing.B) {
	ts := authtest.NewServer(b, testdb.SQLite(b), nil)
	for _, bc := range []struct {
		name string
		body []byte
	}{
		// A 64 KB body of repeated selections.
		{"Repeated64KB", hostileBody("me { id }", 64<<10)},
		// A 37 KB body of conflicting aliases.
		{"ConflictingAliases37KB", hostileBody("a: me { id } a: roles { name }", 37<<10)},
		// The worst documents within the fixed limits (at most 400 fields,
		// one response name at most 16 times in a selection set): twelve
		// names 16 times each (384 fields), repeated or half conflicting.
		{"RepeatedWithinLimits", queryBody(namesRepeated(12, 8, "me { id }", "me { id }"))},
		{"ConflictingWithinLimits", queryBody(namesRepeated(12, 8, "me { id }", "roles { name }"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				size = serveBody(ts.Handler, bc.body)
			}
			b.ReportMetric(float64(size), "resp-bytes")
		})
	}
}

// BenchmarkRefusedDocumentsHeld sends b.N distinct 64 KB documents that
// the server refuses (past its limits) and reports the heap they leave
// behind (held-bytes/doc, after a garbage collection): what the document
// cache keeps of refused documents.
func BenchmarkRefusedDocumentsHeld(b *testing.B) {
	ts := authtest.NewServer(b, testdb.SQLite(b), nil)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		var q strings.Builder
		q.WriteString("{")
		for j := 0; q.Len() < 64<<10-64; j++ {
			fmt.Fprintf(&q, " d%dm%d: me { id }", i, j)
		}
		q.WriteString(" }")
		bodies[i], _ = json.Marshal(map[string]any{"query": q.String()})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := range b.N {
		serveBody(ts.Handler, bodies[i])
	}
	b.StopTimer()
	bodies = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	b.ReportMetric(float64(max(held, 0))/float64(b.N), "held-bytes/doc")
	runtime.KeepAlive(ts)
}
