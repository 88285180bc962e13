package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
)

// TestReadyzOutOfSync cuts a replica off from the others past its sync
// timeout: it refuses tokens then, and says so to load balancers.
func TestReadyzOutOfSync(t *testing.T) {
	c := newCluster(t, nil)
	b := c.start(t, map[string]string{"AUTH_SYNC_TIMEOUT": "100ms"})
	if code, body := probe(t, b, "/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %q, want 200", code, body)
	}
	restore := c.cutOff(t, b)
	waitFor(t, "the replica to be not ready", func() bool {
		code, body := probe(t, b, "/readyz")
		return code == http.StatusServiceUnavailable && body == "out of sync with the other replicas\n"
	})
	restore()
	waitFor(t, "the replica to be ready again", func() bool {
		code, _ := probe(t, b, "/readyz")
		return code == http.StatusOK
	})
}

// inFlight is a GraphQL request sent by hand on its own connection, so that
// its body can be held back half-sent.
type inFlight struct {
	conn net.Conn
	r    *bufio.Reader
	rest string
}

// startInFlight sends the headers and half the body of a { me } request
// to the server at addr (host:port) and returns once the handler is
// reading the body: it asked for it with 100 Continue.
func startInFlight(t *testing.T, addr, token string) *inFlight {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := `{"query":"{ me { email } }"}`
	fmt.Fprintf(conn, "POST /query HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, token, len(body))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if line, _ := r.ReadString('\n'); line != "\r\n" {
		t.Fatalf("after 100 Continue: %q", line)
	}
	io.WriteString(conn, body[:len(body)/2])
	return &inFlight{conn: conn, r: r, rest: body[len(body)/2:]}
}

// finish sends the rest of the body and returns the answer's status and
// the email it holds.
func (f *inFlight) finish(t *testing.T) (int, string) {
	t.Helper()
	if _, err := io.WriteString(f.conn, f.rest); err != nil {
		t.Fatalf("finish the body: %v", err)
	}
	resp, err := http.ReadResponse(f.r, nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct{ Me struct{ Email string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode the answer: %v", err)
	}
	return resp.StatusCode, out.Data.Me.Email
}

// waitRefused waits until addr refuses connections.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, "new connections to be refused", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
}

func TestShutdownFinishesRequestInFlight(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		url, stop := startRun(t, map[string]string{"DATABASE_URL": dsn})
		token := gql(t, url, "", `mutation { register(email: "ada@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
		addr := strings.TrimPrefix(url, "http://")

		req := startInFlight(t, addr, token)
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		waitRefused(t, addr)
		select {
		case err := <-stopped:
			t.Fatalf("run returned (%v) with a request in flight", err)
		default:
		}
		if status, email := req.finish(t); status != http.StatusOK || email != "ada@example.com" {
			t.Errorf("request in flight: %d %q, want 200 with the email", status, email)
		}
		if err := <-stopped; err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	})
}

// TestShutdownOnSIGTERM runs the command as a process of its own (this
// test binary, running main: see TestMain) and stops it with SIGTERM while
// a request is in flight: the request is answered and the process exits 0.
func TestShutdownOnSIGTERM(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "PORT=0", "DATABASE_URL="+dsn, "AUTH_ARGON2_MEMORY=64", "AUTH_ARGON2_TIME=1")
		var stderr syncBuffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		var url string
		sc := bufio.NewScanner(stdout)
		for url == "" && sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				url = "http://127.0.0.1:" + m[1]
			}
		}
		if url == "" {
			cmd.Wait()
			t.Fatalf("the server did not start: %s", stderr.String())
		}
		go io.Copy(io.Discard, stdout)
		token := gql(t, url, "", `mutation { register(email: "ada@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
		addr := strings.TrimPrefix(url, "http://")

		req := startInFlight(t, addr, token)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitRefused(t, addr)
		if status, email := req.finish(t); status != http.StatusOK || email != "ada@example.com" {
			t.Errorf("request in flight: %d %q, want 200 with the email", status, email)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v, want status 0; log:\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), `"msg":"shutting down`) {
			t.Errorf("no JSON shutdown line in the log:\n%s", stderr.String())
		}
	})
}

// TestShutdownDelay: during AUTH_SHUTDOWN_DELAY the server still answers,
// new connections included, with /readyz saying it is going away; then it
// closes the listener and stops. The test ends the delay itself (see
// shutdownDelayed) once it has seen all that, rather than wait it out.
func TestShutdownDelay(t *testing.T) {
	release := make(chan time.Time)
	delays := make(chan time.Duration, 1)
	shutdownDelayed = func(d time.Duration) <-chan time.Time { delays <- d; return release }
	t.Cleanup(func() { shutdownDelayed = time.After })
	url, stop := startRun(t, map[string]string{"DATABASE_URL": filepath.Join(t.TempDir(), "delay.db"), "AUTH_SHUTDOWN_DELAY": "3s"})
	token := gql(t, url, "", `mutation { register(email: "ada@example.com", password: "password1") { accessToken } }`).OK(t).Str("register", "accessToken")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// A client of its own, so that each probe dials anew.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "/readyz to say shutting down", func() bool {
		resp, err := client.Get(url + "/readyz")
		if err != nil {
			t.Fatalf("refused during the delay: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && string(body) == "shutting down\n"
	})
	gql(t, url, token, `{ me { email } }`).OK(t)
	if delay := <-delays; delay != 3*time.Second {
		t.Errorf("shutdown waited %s, want AUTH_SHUTDOWN_DELAY's 3s", delay)
	}
	close(release)
	waitRefused(t, strings.TrimPrefix(url, "http://"))
	if err := <-stopped; err != nil {
		t.Errorf("run = %v, want nil", err)
	}
}
