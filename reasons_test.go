package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUnauthenticatedHasReason scans every non-test Go file for an
// UNAUTHENTICATED error made without extensions.reason: a call
// Errorf(Unauthenticated, …), an Error literal whose Code is
// Unauthenticated and whose Extensions map has no "reason" key, or
// extensions built by hand with "code": UNAUTHENTICATED and no "reason". Clients refresh only on
// TOKEN_EXPIRED (README, "Client recipes"); a new refusal without a reason
// would have them guess again. models.Unauthenticatedf is the way.
func TestUnauthenticatedHasReason(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (path == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "node_modules"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if why := reasonless(n); why != "" {
				t.Errorf("%s: %s; use models.Unauthenticatedf with a Reason constant", fset.Position(n.Pos()), why)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reasonless says why n makes an UNAUTHENTICATED error without a reason,
// or returns "".
func reasonless(n ast.Node) string {
	switch n := n.(type) {
	case *ast.CallExpr:
		if name(n.Fun) == "Errorf" && len(n.Args) > 0 && name(n.Args[0]) == "Unauthenticated" {
			return "Errorf(Unauthenticated, …) has no reason"
		}
	case *ast.CompositeLit:
		if name(n.Type) == "Error" {
			var unauthenticated, reason bool
			for _, e := range n.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok && name(kv.Key) == "Code" {
					unauthenticated = name(kv.Value) == "Unauthenticated"
				} else if ok && name(kv.Key) == "Extensions" {
					reason = hasKey(kv.Value, "reason")
				}
			}
			if unauthenticated && !reason {
				return "an Error{Code: Unauthenticated} without Extensions{\"reason\": …}"
			}
		} else if code, ok := valueOf(n, "code"); ok && (name(code) == "Unauthenticated" || isString(code, "UNAUTHENTICATED")) && !hasKey(n, "reason") {
			// Extensions built by hand, as the presenter or a handler
			// outside GraphQL (the revocation feed) might.
			return `extensions {"code": UNAUTHENTICATED} without "reason"`
		}
	}
	return ""
}

// name is the identifier of e, or of its selector (models.Errorf → Errorf),
// through & and *.
func name(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.StarExpr:
		return name(e.X)
	case *ast.UnaryExpr:
		return name(e.X)
	}
	return ""
}

// hasKey reports whether e is a map literal with the string key k.
func hasKey(e ast.Expr, k string) bool {
	_, ok := valueOf(e, k)
	return ok
}

// valueOf returns the value of the string key k in the map literal e.
func valueOf(e ast.Expr, k string) (ast.Expr, bool) {
	m, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	for _, el := range m.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok && isString(kv.Key, k) {
			return kv.Value, true
		}
	}
	return nil, false
}

// isString reports whether e is the string literal s.
func isString(e ast.Expr, s string) bool {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	v, err := strconv.Unquote(lit.Value)
	return err == nil && v == s
}

// TestReasonlessCatches: the scan above finds each form it looks for, and
// passes models.Unauthenticatedf's own literal, so it cannot pass by
// finding nothing.
func TestReasonlessCatches(t *testing.T) {
	for src, want := range map[string]bool{
		`models.Errorf(models.Unauthenticated, "x")`:                                     true,
		`Errorf(Unauthenticated, "x")`:                                                   true,
		`&models.Error{Code: models.Unauthenticated, Message: "x"}`:                      true,
		`&Error{Code: Unauthenticated, Extensions: map[string]any{"other": 1}}`:          true,
		`map[string]any{"code": "UNAUTHENTICATED"}`:                                      true,
		`map[string]any{"code": models.Unauthenticated, "message": "x"}`:                 true,
		`&Error{Code: Unauthenticated, Extensions: map[string]any{"reason": reason}}`:    false,
		`map[string]any{"code": models.Unauthenticated, "reason": models.ReasonNoToken}`: false,
		`models.Unauthenticatedf(models.ReasonNoToken, "x")`:                             false,
		`models.Errorf(models.Forbidden, "x")`:                                           false,
		`code != "UNAUTHENTICATED"`:                                                      false,
	} {
		e, err := parser.ParseExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			found = found || reasonless(n) != ""
			return true
		})
		if found != want {
			t.Errorf("%s: found = %v, want %v", src, found, want)
		}
	}
}
