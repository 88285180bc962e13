package main

// Attacks on the cost of one request (issue 10, §1 and §6): each test
// sends the hostile document or connection over real HTTP or TCP and
// asserts on what comes back: codes, counts of errors, sizes.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/models"
)

// TestRetryAfterHeaderServiceUnavailable cuts a replica off from the others
// (as TestReplicas does) until it refuses tokens with SERVICE_UNAVAILABLE:
// the answer carries Retry-After too.
func TestRetryAfterHeaderServiceUnavailable(t *testing.T) {
	c := newCluster(t, nil)
	b := c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "500ms"})
	u := registerAt(t, b, "ada@example.com", "password1")
	restore := c.cutOff(t, b)
	defer restore()
	var r gqlResponse
	waitFor(t, "B to refuse tokens", func() bool {
		r = gql(t, b, u.Access, `{ me { id } }`)
		return len(r.Errors) > 0
	})
	if r.Code(t) != models.ServiceUnavailable {
		t.Fatalf("me at B cut off: %+v, want SERVICE_UNAVAILABLE", r.Errors)
	}
	if got, want := r.Header.Get("Retry-After"), fmt.Sprint(r.Errors[0].Extensions["retryAfter"]); got == "" || got != want {
		t.Errorf("Retry-After = %q, want %s (the error's retryAfter)", got, want)
	}
}

func TestMetricsInProduction(t *testing.T) {
	dir := t.TempDir()
	get := func(t *testing.T, url string) int {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("NotOnThePort", func(t *testing.T) {
		url, _ := startRun(t, withProductionMail(t, map[string]string{"DATABASE_URL": dir + "/prod.db", "AUTH_ENV": "production"}))
		if code := get(t, url); code != http.StatusNotFound {
			t.Errorf("AUTH_ENV=production: GET /metrics = %d, want 404", code)
		}
	})
	t.Run("PublicOnRequest", func(t *testing.T) {
		url, _ := startRun(t, withProductionMail(t, map[string]string{"DATABASE_URL": dir + "/public.db", "AUTH_ENV": "production", "AUTH_METRICS_PUBLIC": "true"}))
		if code := get(t, url); code != http.StatusOK {
			t.Errorf("AUTH_METRICS_PUBLIC=true: GET /metrics = %d, want 200", code)
		}
	})
	t.Run("DevelopmentUnchanged", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dir + "/dev.db"})
		if code := get(t, url); code != http.StatusOK {
			t.Errorf("development: GET /metrics = %d, want 200", code)
		}
	})
}

// dial opens a TCP connection to the server of url and sends nothing.
func dial(t *testing.T, url string) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// openIdle is dial, failing the test on an error.
func openIdle(t *testing.T, url string) net.Conn {
	t.Helper()
	c, err := dial(t, url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether the server closed c: a read ends with
// EOF or a reset rather than the deadline (which only bounds the wait of
// a test that fails).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil {
		t.Fatal("the server sent something on an idle connection")
	}
	return !(errors.As(err, &ne) && ne.Timeout())
}

// served reports whether a request on c is answered.
func served(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
}

func TestConnectionsPerClientCapped(t *testing.T) {
	dir := t.TempDir()
	t.Run("PastTheCapClosed", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dir + "/cap.db", "AUTH_MAX_CONNS_PER_CLIENT": "4"})
		var open []net.Conn
		for range 4 {
			open = append(open, openIdle(t, url))
		}
		if !served(open[3]) {
			t.Fatal("the 4th connection is not served")
		}
		// The reset may come before the dial returns.
		if extra, err := dial(t, url); err == nil && !closedByServer(t, extra) {
			t.Error("the 5th connection of one address stayed open")
		}
		for i, c := range open {
			if !served(c) {
				t.Errorf("connection %d within the cap is not served", i+1)
			}
		}
		open[0].Close()
		// Its place is given back once the server has seen it closed.
		for range 50 {
			if c, err := dial(t, url); err == nil && served(c) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("a connection closed did not give its place back")
	})
	t.Run("TrustedProxyExempt", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dir + "/proxy.db", "AUTH_MAX_CONNS_PER_CLIENT": "2", "AUTH_TRUSTED_PROXIES": "127.0.0.1"})
		var open []net.Conn
		for range 5 {
			open = append(open, openIdle(t, url))
		}
		for i, c := range open {
			if !served(c) {
				t.Errorf("connection %d from the trusted proxy is not served", i+1)
			}
		}
	})
}
