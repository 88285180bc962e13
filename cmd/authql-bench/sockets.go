package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/authql/authql/internal/wsclient"
)

// socketStats is what the sockets scenario saw: how long a logout on
// replica A took to close its session's socket on replica B or C.
type socketStats struct {
	Sockets  int // open at once, on B and C, each of its own session
	Replicas int // in all, A included
	Closed   int // with 4401, one per logout
}

// socketResult builds the sockets scenario's result from the delays
// between A's logout answers and the sockets' closes, over elapsed.
func socketResult(db string, lat []time.Duration, st socketStats, elapsed time.Duration) scenarioResult {
	return scenarioResult{
		DB: db, Name: "sockets", Title: fmt.Sprintf("logout on one of %d replicas, its socket on another closed", st.Replicas),
		Conns:   fmt.Sprintf("%d sockets", st.Sockets),
		Runs:    []runStats{{Elapsed: elapsed, All: opStats{N: len(lat), Lat: summarize(slices.Clone(lat))}}},
		Sockets: &st,
	}
}

// socketWait bounds the wait for one socket's close after its logout.
const socketWait = 5 * time.Second

// openBenchSocket logs in on a as u, opens a socket to url with the
// session's token and subscribes to sessionEvents; closed receives the
// time the server closed it, and its code. url is the replica's /query.
func openBenchSocket(ctx context.Context, a *client, url string, u *user, buf *bytes.Buffer) (string, chan closeSeen, error) {
	t, _, err := a.authMutation(loginDoc, "login", map[string]string{"email": u.email, "password": benchPassword}, buf)
	if err != nil {
		return "", nil, err
	}
	c, _, err := wsclient.Dial(ctx, url, wsclient.Options{})
	if err != nil {
		return "", nil, err
	}
	if err := c.InitToken(ctx, t.AccessToken); err != nil {
		c.CloseNow()
		return "", nil, err
	}
	if err := c.Subscribe(ctx, "s", `subscription { sessionEvents { type current } }`, nil); err != nil {
		c.CloseNow()
		return "", nil, err
	}
	closed := make(chan closeSeen, 1)
	go func() {
		defer c.CloseNow()
		cl, _, err := c.WaitClose(ctx)
		seen := closeSeen{at: time.Now(), err: err}
		if cl != nil {
			seen.code = cl.Code
		}
		closed <- seen
	}()
	return t.AccessToken, closed, nil
}

// closeSeen is how and when a socket was closed.
type closeSeen struct {
	at   time.Time
	code int
	err  error
}

// measureSockets starts two more servers on dsn beside a, opens
// b.o.sockets sockets on them (alternately), each of a session of its own
// signed in on A, then logs the sessions out on A one at a time and times
// each from A's answer to its socket's close (4401).
func (b *dbBench) measureSockets(ctx context.Context, a *server, dsn string, users []*user) (scenarioResult, error) {
	urls := []string{}
	for _, name := range []string{"b", "c"} {
		fmt.Fprintf(b.log, "%s: starting replica %s for the sockets…\n", b.db, name)
		srv, err := startServer(ctx, b.bin, append(slices.Clone(b.env), "DATABASE_URL="+dsn), b.cpus, filepath.Join(b.tmp, b.db+"-sockets-"+name+".log"))
		if err != nil {
			return scenarioResult{}, fmt.Errorf("replica %s: %w", name, err)
		}
		defer srv.stop()
		urls = append(urls, srv.url)
	}
	onA := newClient(a.url, 1)
	st := socketStats{Sockets: b.o.sockets, Replicas: 3}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var buf bytes.Buffer
	type open struct {
		access string
		closed chan closeSeen
	}
	socks := make([]open, st.Sockets)
	fmt.Fprintf(b.log, "%s: opening %d sockets on B and C…\n", b.db, st.Sockets)
	for i := range socks {
		access, closed, err := openBenchSocket(ctx, onA, urls[i%2], users[i%len(users)], &buf)
		if err != nil {
			return scenarioResult{}, fmt.Errorf("socket %d: %w", i+1, err)
		}
		socks[i] = open{access, closed}
	}
	lat := make([]time.Duration, 0, len(socks))
	t0 := time.Now()
	fmt.Fprintf(b.log, "%s: %d logouts on A, each timed to its socket's close…\n", b.db, len(socks))
	for i, s := range socks {
		resp, err := onA.post(logoutDoc, s.access, &buf)
		if err != nil || !bytes.Contains(resp, []byte(`"logout":true`)) {
			return scenarioResult{}, fmt.Errorf("logout %d: %s %v", i+1, truncate(string(resp), 200), err)
		}
		answered := time.Now()
		select {
		case seen := <-s.closed:
			if seen.err != nil || seen.code != 4401 {
				return scenarioResult{}, fmt.Errorf("socket %d: closed %d, %v; want 4401", i+1, seen.code, seen.err)
			}
			lat = append(lat, max(seen.at.Sub(answered), 0))
			st.Closed++
		case <-time.After(socketWait):
			return scenarioResult{}, fmt.Errorf("socket %d not closed %s after its logout on A", i+1, socketWait)
		}
	}
	res := socketResult(b.db, lat, st, time.Since(t0))
	fmt.Fprintf(b.log, "%s sockets: p50 %s, p99 %s, max %s\n", b.db,
		fmtDur(res.med().All.Lat.P50), fmtDur(res.med().All.Lat.P99), fmtDur(res.med().All.Lat.Max))
	return res, nil
}
