package playground

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAssets checks that every file the page loads is embedded with the
// hash the page pins, and that the page points at them rather than a CDN.
func TestAssets(t *testing.T) {
	for _, a := range []asset{graphiqlJS, graphiqlCSS, reactJS, reactDOMJS} {
		b, err := fs.ReadFile(assets, a.name)
		if err != nil {
			t.Errorf("%s: %v", a.name, err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); got != a.sri {
			t.Errorf("%s hashes to %s, the page pins %s", a.name, got, a.sri)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", Handler("authql", "/query"))
	mux.Handle("GET "+AssetsPath, AssetsHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// html/template writes some characters of the hashes (+) as entities.
	page := html.UnescapeString(get(t, srv.URL+"/", http.StatusOK))
	if strings.Contains(page, "cdn.jsdelivr.net") || strings.Contains(page, "https://") {
		t.Errorf("the page still loads something from elsewhere:\n%s", page)
	}
	for _, a := range []asset{graphiqlJS, graphiqlCSS, reactJS, reactDOMJS} {
		if !strings.Contains(page, `"`+AssetsPath+a.name+`"`) || !strings.Contains(page, a.sri) {
			t.Errorf("the page does not load %s%s with integrity %s", AssetsPath, a.name, a.sri)
		}
		get(t, srv.URL+AssetsPath+a.name, http.StatusOK)
	}
	get(t, srv.URL+AssetsPath, http.StatusNotFound)
	get(t, srv.URL+AssetsPath+"nothing.js", http.StatusNotFound)
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s = %d, want %d", url, resp.StatusCode, want)
	}
	return string(b)
}
