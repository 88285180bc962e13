package authz_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDatabaseDependency: authz is imported by services that have no
// database; it must not pull in GORM, or authql's packages that do.
func TestNoDatabaseDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/authql/authql/authz").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "gorm.io/") || strings.HasPrefix(d, "github.com/authql/authql/") && d != "github.com/authql/authql/authz" {
			t.Errorf("authz depends on %s", d)
		}
	}
}
