package graph

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// TestDocumentBytesCoversTheAST checks documentBytes, by which the document
// cache counts its bytes, against what parsing each kind of document
// allocates (more than the document keeps: the lexer's work is garbage
// afterwards). An estimate below it would let the cache hold more than its
// bound.
func TestDocumentBytesCoversTheAST(t *testing.T) {
	for name, q := range map[string]string{
		"Tiny":       `{ me { id } }`,
		"Page":       `{ users(first: 5, after: "abc") { id email roles permissions createdAt cursor lastLoginAt } }`,
		"Variables":  `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken user { id } } }`,
		"ManyFields": "{" + strings.Repeat(" me { id }", MaxFields/2) + " }",
		"Aliases":    "{" + strings.Repeat(" a: me { b: id c: email }", MaxFields/3) + " }",
		"Directives": "{" + strings.Repeat(" me @include(if: true) { id @skip(if: false) }", MaxFields/2) + " }",
		"Arguments":  "{" + strings.Repeat(` auditLog(first: 5, after: "x", userId: "y", type: LOGIN) { id }`, MaxFields/2) + " }",
		"Fragments":  "{ me { ...A } } fragment A on User { id ...B } fragment B on User { email ...C } fragment C on User { roles }",
	} {
		t.Run(name, func(t *testing.T) {
			parser.ParseQuery(&ast.Source{Input: q}) // warm up what a first parse initialises
			// TotalAlloc counts the whole process's allocations: what the
			// runtime or another goroutine allocates meanwhile comes on top
			// of the parse's at times. A parse allocates the same each time,
			// so the least of a few measurements is the parse's own.
			var doc *ast.QueryDocument
			allocated := int64(math.MaxInt64)
			for range 5 {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				d, err := parser.ParseQuery(&ast.Source{Input: q})
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Fatal(err)
				}
				doc, allocated = d, min(allocated, int64(after.TotalAlloc-before.TotalAlloc))
			}
			if est := documentBytes(q, doc); est < allocated {
				t.Errorf("documentBytes = %d, but parsing allocated %d bytes", est, allocated)
			}
		})
	}
}
