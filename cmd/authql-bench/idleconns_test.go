package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/httpapi"
)

// idleConns is how many connections one client opens in
// BenchmarkIdleConnsFromOneClient: the count of issue 10's report ("2,000
// idle connections cost 80 MB today").
const idleConns = 2000

// idleSettle is how long the connections sit idle before the server's
// memory is read: long enough for the server's goroutines to have parked
// after their request, well inside its 2-minute IdleTimeout.
const idleSettle = 2 * time.Second

// BenchmarkIdleConnsFromOneClient measures what AUTH_MAX_CONNS_PER_CLIENT
// does to the memory idle connections from one client address hold: it
// starts the built server (a process of its own, so that /proc/<pid>/status
// is the server's alone) on a fresh SQLite file, with the cap off and at
// its default, opens idleConns connections from 127.0.0.1, sends one
// keep-alive GET /healthz on each and leaves them idle, then reads the
// server's VmRSS and VmHWM and counts the connections it kept. A
// benchmark rather than a scenario of the tool: it measures memory, not a
// load, and has no place among the report's rates and targets. Each
// iteration is one fresh server; run it with -benchtime 1x -count 3:
//
//	go test -run '^$' -bench IdleConnsFromOneClient -benchtime 1x -count 3 ./cmd/authql-bench
//
// AUTHQL_BENCH_BIN names a built server to use instead of building one.
func BenchmarkIdleConnsFromOneClient(b *testing.B) {
	bin := idleConnsServer(b)
	for _, c := range []struct{ name, cap string }{
		{"cap=off", "0"},
		{"cap=default", strconv.Itoa(httpapi.DefaultMaxConnsPerClient)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				m, err := measureIdleConns(b, bin, c.cap)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.startRSS)/mib, "start-RSS-MiB")
				b.ReportMetric(float64(m.rss)/mib, "RSS-MiB")
				b.ReportMetric(float64(m.hwm)/mib, "HWM-MiB")
				b.ReportMetric(float64(m.kept), "kept-conns")
				b.ReportMetric(float64(m.answered), "answered-conns")
			}
		})
	}
}

// idleConnsServer returns the server binary: AUTHQL_BENCH_BIN's, or one
// built from this repository into the benchmark's temporary directory.
func idleConnsServer(b *testing.B) string {
	if bin := os.Getenv("AUTHQL_BENCH_BIN"); bin != "" {
		return bin
	}
	root, err := repoRoot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	bin, err := buildServer(context.Background(), root, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

// idleConnsMeasure is one run's reading: the server's resident memory
// before the connections and with them idle, its peak in between (VmHWM,
// reset once the server answered), and how many connections got an answer
// and were still open after the reading.
type idleConnsMeasure struct {
	startRSS, rss, hwm int64
	answered, kept     int
}

// measureIdleConns starts bin with AUTH_MAX_CONNS_PER_CLIENT=limit and
// measures it holding idleConns idle connections from 127.0.0.1.
func measureIdleConns(b *testing.B, bin, limit string) (idleConnsMeasure, error) {
	var m idleConnsMeasure
	dir := b.TempDir()
	env := []string{
		"DATABASE_URL=sqlite://" + filepath.Join(dir, "authql.db"),
		"AUTH_MAX_CONNS_PER_CLIENT=" + limit,
		// Not the tool's baseEnv: loopback must not be a trusted proxy,
		// which the cap exempts.
		"AUTH_TRUSTED_PROXIES=",
	}
	srv, err := startServer(context.Background(), bin, env, "", filepath.Join(dir, "server.log"))
	if err != nil {
		return m, err
	}
	defer srv.stop()
	u, err := url.Parse(srv.url)
	if err != nil {
		return m, err
	}
	// The health checks of startServer are done: what follows is the
	// connections' alone.
	time.Sleep(idleSettle)
	if m.startRSS, err = currentRSS(srv.pid()); err != nil {
		return m, err
	}
	if err := resetPeakRSS(srv.pid()); err != nil {
		return m, err
	}
	conns := openIdleConns(u.Host, idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	m.answered = len(conns)
	time.Sleep(idleSettle)
	if m.rss, err = currentRSS(srv.pid()); err != nil {
		return m, err
	}
	if m.hwm, err = peakRSS(srv.pid()); err != nil {
		return m, err
	}
	m.kept = stillOpen(conns)
	return m, nil
}

// openIdleConns dials addr n times, one after the other, sends GET /healthz
// on each with keep-alive and returns the connections that were answered
// 200 and left open; the others (reset by the server, or refused) are
// closed.
func openIdleConns(addr string, n int) []net.Conn {
	var conns []net.Conn
	req := []byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		if err := healthz(c, req); err != nil {
			c.Close()
			continue
		}
		conns = append(conns, c)
	}
	return conns
}

// healthz sends req on c and reads a 200 answer to the end of its body,
// leaving c idle.
func healthz(c net.Conn, req []byte) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return fmt.Errorf("GET /healthz: %s, close %v", resp.Status, resp.Close)
	}
	return nil
}

// stillOpen counts the connections of conns the server has not closed: a
// read that times out finds nothing from the server, neither EOF nor a
// reset. The reads run together, so that the count takes one timeout.
func stillOpen(conns []net.Conn) int {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open int
	)
	deadline := time.Now().Add(500 * time.Millisecond)
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return open
}
