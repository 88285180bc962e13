package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listed is the set of the names in variables.
func listed() map[string]bool {
	m := make(map[string]bool, len(variables))
	for _, v := range variables {
		m[v.Name] = true
	}
	return m
}

// TestVariablesListsWhatLoadConfigReads: every variable loadConfig asks
// getenv for is in the table (which --help is built from), and every
// variable in the table is read.
func TestVariablesListsWhatLoadConfigReads(t *testing.T) {
	table := listed()
	read := map[string]bool{}
	loadConfig(func(name string) string {
		read[name] = true
		if !table[name] {
			t.Errorf("loadConfig reads %s, which the variables table does not list", name)
		}
		return ""
	})
	for _, v := range variables {
		if !read[v.Name] {
			t.Errorf("the variables table lists %s, which loadConfig does not read", v.Name)
		}
	}
}

// envName matches what can only be the name of one of authql's variables.
var envName = regexp.MustCompile(`^(AUTH_[A-Z0-9_]+|PORT|DATABASE_URL)$`)

// TestVariablesListsWhatTheCodeNames scans the server's source (every
// package but the tools under cmd/ and the test helpers under internal/),
// tests aside, for names of variables the table does not list: every
// string literal that is such a name, and every literal passed to a getenv
// (the command's, os.Getenv or os.LookupEnv), whatever its name. It
// catches the reads that loadConfig's run in the test above does not make
// (a command reading PORT, a branch not taken, a package reading its own).
func TestVariablesListsWhatTheCodeNames(t *testing.T) {
	table := listed()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (path == "cmd" || path == "internal" || path == "examples" || path == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "."):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			// envReader's methods read the variable their caller names
			// (by a literal, which the scan checks there).
			reader := isReaderMethod(decl)
			ast.Inspect(decl, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && envName.MatchString(s) && !table[s] {
						t.Errorf("%s: %s is not in the variables table", fset.Position(n.Pos()), s)
					}
				case *ast.CallExpr:
					if !isGetenv(n.Fun) || len(n.Args) == 0 {
						return true
					}
					lit, ok := n.Args[0].(*ast.BasicLit)
					if !ok {
						if !reader {
							t.Errorf("%s: a variable read by a name that is not a literal; read it by its name, so this test can check it", fset.Position(n.Pos()))
						}
						return true
					}
					if s, _ := strconv.Unquote(lit.Value); !table[s] {
						t.Errorf("%s: reads %s, which the variables table does not list", fset.Position(n.Pos()), s)
					}
				}
				return true
			})
		}
	}
}

// isReaderMethod reports whether decl is a method of envReader.
func isReaderMethod(decl ast.Decl) bool {
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv == nil || len(fn.Recv.List) == 0 {
		return false
	}
	star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	id, ok := star.X.(*ast.Ident)
	return ok && id.Name == "envReader"
}

// isGetenv reports whether fun is a function that reads a variable.
func isGetenv(fun ast.Expr) bool {
	var name string
	switch f := fun.(type) {
	case *ast.Ident:
		name = f.Name
	case *ast.SelectorExpr:
		name = f.Sel.Name
	}
	switch name {
	case "getenv", "Getenv", "LookupEnv":
		return true
	}
	return false
}

// TestVariablesDefaults: a variable set to the table's Default configures
// what leaving it unset does, so that --help tells the truth.
func TestVariablesDefaults(t *testing.T) {
	unset, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range variables {
		if v.Default == "" {
			continue
		}
		got, err := loadConfig(func(name string) string {
			if name == v.Name {
				return v.Default
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s=%s: %v", v.Name, v.Default, err)
			continue
		}
		if !reflect.DeepEqual(got, unset) {
			t.Errorf("%s=%s configures %+v, but unset it is %+v", v.Name, v.Default, got, unset)
		}
	}
}

// TestConfigHelp: --help lists every variable once, with its default.
func TestConfigHelp(t *testing.T) {
	for _, v := range variables {
		if n := strings.Count(configHelp, "\n  "+v.Name+" "); n != 1 {
			t.Errorf("--help lists %s %d times, want once", v.Name, n)
		}
		if v.Default != "" && !strings.Contains(strings.Join(strings.Fields(configHelp), " "), "(default "+v.Default+")") {
			t.Errorf("--help does not give %s's default %s", v.Name, v.Default)
		}
	}
	for i, line := range strings.Split(configHelp, "\n") {
		if len([]rune(line)) > 92 && strings.Contains(strings.TrimSpace(line), " ") {
			t.Errorf("--help line %d is %d characters: %q", i+1, len(line), line)
		}
	}
}

// TestVariablesInReadme: the README's configuration section names every
// variable of the table.
func TestVariablesInReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, v := range variables {
		if !strings.Contains(section, "`"+v.Name+"`") {
			t.Errorf("README.md's Configuration section does not name %s", v.Name)
		}
	}
}

// TestWebAuthnConfig: the passkeys' relying party as set, its defaults
// once the port is known (AUTH_APP_URL's host and origin, with
// AUTH_CORS_ORIGINS), and the settings refused at start.
func TestWebAuthnConfig(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantRPID    string
		wantOrigins []string
		wantErr     []string
	}{
		{"DevDefaults", nil, "localhost", []string{"http://localhost:8081"}, nil},
		{"DevExampleUI", map[string]string{"AUTH_EXAMPLE_UI": "true"}, "localhost",
			[]string{"http://localhost:8081", "http://127.0.0.1:8081", "http://[::1]:8081"}, nil},
		{"FromAppURLAndCORS", map[string]string{"AUTH_APP_URL": "https://app.example.com:8443/base/", "AUTH_CORS_ORIGINS": "https://admin.example.com, https://app.example.com:8443"},
			"app.example.com", []string{"https://app.example.com:8443", "https://admin.example.com"}, nil},
		{"Set", map[string]string{"AUTH_APP_URL": "https://app.example.com", "AUTH_WEBAUTHN_RP_ID": "Example.COM", "AUTH_WEBAUTHN_ORIGINS": "https://app.example.com, https://example.com:443"},
			"example.com", []string{"https://app.example.com", "https://example.com"}, nil},
		{"RPIDWithScheme", map[string]string{"AUTH_WEBAUTHN_RP_ID": "https://example.com"}, "", nil, []string{"AUTH_WEBAUTHN_RP_ID", "not a domain"}},
		{"RPIDWithPort", map[string]string{"AUTH_WEBAUTHN_RP_ID": "example.com:443"}, "", nil, []string{"AUTH_WEBAUTHN_RP_ID"}},
		{"RPIDAddress", map[string]string{"AUTH_WEBAUTHN_RP_ID": "10.0.0.1"}, "", nil, []string{"AUTH_WEBAUTHN_RP_ID"}},
		{"OriginPath", map[string]string{"AUTH_WEBAUTHN_ORIGINS": "https://app.example.com/login"}, "", nil, []string{"AUTH_WEBAUTHN_ORIGINS", "no path"}},
		{"OriginOffRPID", map[string]string{"AUTH_WEBAUTHN_RP_ID": "example.com", "AUTH_WEBAUTHN_ORIGINS": "https://evil-example.com"}, "", nil, []string{"AUTH_WEBAUTHN_ORIGINS", "not on example.com"}},
		{"HTTPInProduction", map[string]string{"AUTH_ENV": "production", "AUTH_WEBAUTHN_ORIGINS": "http://app.example.com"}, "", nil, []string{"AUTH_WEBAUTHN_ORIGINS", "https"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(func(name string) string { return tc.env[name] })
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("loadConfig accepted it")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			listenOrigins(&c, &net.TCPAddr{IP: net.IPv4zero, Port: 8081})
			if c.WebAuthnRPID != tc.wantRPID || !slices.Equal(c.WebAuthnOrigins, tc.wantOrigins) {
				t.Errorf("RP ID %q, origins %q; want %q, %q", c.WebAuthnRPID, c.WebAuthnOrigins, tc.wantRPID, tc.wantOrigins)
			}
			a := authConfig(c)
			if a.WebAuthnRPID != c.WebAuthnRPID || !slices.Equal(a.WebAuthnOrigins, c.WebAuthnOrigins) {
				t.Errorf("authConfig: %q %q", a.WebAuthnRPID, a.WebAuthnOrigins)
			}
		})
	}
}
