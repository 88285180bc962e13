package authtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/authql/authql/auth"
)

// AppOrigin is the frontend allowed to use cookie sessions in these tests.
const AppOrigin = "https://app.example.com"

// The documents of the sign-in mutations, asking for PayloadFields.
const (
	LoginDoc         = `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { ` + PayloadFields + ` } }`
	RegisterDoc      = `mutation($e: String!, $p: String!) { register(email: $e, password: $p) { ` + PayloadFields + ` } }`
	RefreshDoc       = `mutation($t: String!) { refresh(refreshToken: $t) { ` + PayloadFields + ` } }`
	RefreshCookieDoc = `mutation { refresh { ` + PayloadFields + ` } }`
)

// Creds are the variables of LoginDoc and RegisterDoc for email.
func Creds(email string) map[string]any { return map[string]any{"e": email, "p": "password1"} }

// SetCookie returns the one Set-Cookie line of r, failing unless there is
// exactly one and it is the refresh cookie's.
func SetCookie(tb testing.TB, r Response) (*http.Cookie, string) {
	tb.Helper()
	lines := r.Header.Values("Set-Cookie")
	if len(lines) != 1 {
		tb.Fatalf("Set-Cookie = %q, want exactly one", lines)
	}
	c, err := http.ParseSetCookie(lines[0])
	if err != nil {
		tb.Fatalf("Set-Cookie %q: %v", lines[0], err)
	}
	if c.Name != auth.CookieName {
		tb.Fatalf("Set-Cookie %q: name %q, want %q", lines[0], c.Name, auth.CookieName)
	}
	return c, lines[0]
}

// Probe GETs path on the server at url and returns the status and body,
// failing unless the answer may not be cached.
func Probe(t *testing.T, url, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	return resp.StatusCode, string(body)
}

// Scrape returns the metrics of the server at url, one sample a line.
func Scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// SyncBuffer is a bytes.Buffer safe for a server's goroutines to write to.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// LogLines decodes a JSON log, failing on any line that is not JSON.
func LogLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// RequestLines returns the "request" lines of a log by request id.
func RequestLines(t *testing.T, lines []map[string]any) map[string][]map[string]any {
	t.Helper()
	byID := map[string][]map[string]any{}
	for _, l := range lines {
		if l["msg"] == "request" {
			id, _ := l["request_id"].(string)
			byID[id] = append(byID[id], l)
		}
	}
	return byID
}
