package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// opKind is one of the operations the tool sends.
type opKind int

const (
	opMe opKind = iota
	opLogin
	opRefresh
	numOps
)

// outcome is how a request ended.
type outcome int

const (
	ok      outcome = iota
	limited         // RATE_LIMITED: the server refused it on purpose (hashing pool busy, or the client's share of it in use)
	failed          // anything else: a transport error or an unexpected GraphQL error
)

// The documents sent. Variables rather than literals in the mutations, so
// that a token needs no escaping inside the document.
var (
	meBody        = []byte(`{"query":"{ me { id email } }"}`)
	loginDoc      = `mutation($email:String!,$password:String!){ login(email:$email,password:$password){ accessToken refreshToken } }`
	registerDoc   = `mutation($email:String!,$password:String!){ register(email:$email,password:$password){ accessToken refreshToken } }`
	refreshDoc    = `mutation($token:String!){ refresh(refreshToken:$token){ accessToken refreshToken } }`
	benchPassword = "bench-password-1"
)

// user is an account the tool registered, with the latest tokens it holds.
// Within a scenario each user belongs to one worker, so no locking.
type user struct {
	email, access, refresh string
}

// client sends GraphQL requests over one keep-alive transport.
type client struct {
	http *http.Client
	url  string
	// forwardedFor, when set, is sent as X-Forwarded-For: the client
	// address a worker stands for (see workerAddr).
	forwardedFor string
}

// as returns a client over the same transport that sends addr as its
// X-Forwarded-For.
func (c *client) as(addr string) *client {
	cc := *c
	cc.forwardedFor = addr
	return &cc
}

// workerNet is where the workers' client addresses come from: 198.18.0.0/15,
// set aside for benchmarks (RFC 2544), so that none is a real client's.
var workerNet = netip.MustParsePrefix("198.18.0.0/15")

// workerAddr is the client address worker i sends as X-Forwarded-For, the
// same in every scenario. The server gives each client address only a
// share of its hashing pool; real clients come from many addresses,
// usually through a proxy, so each worker stands for a client of its own
// rather than all of them sharing 127.0.0.1's share. The network's first
// and last addresses are skipped; past the 131,070 between them (more
// workers than a machine runs) addresses repeat.
func workerAddr(i int) string {
	b := workerNet.Addr().As4()
	n := binary.BigEndian.Uint32(b[:]) + 1 + uint32(i%(1<<(32-workerNet.Bits())-2))
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b).String()
}

// newClient returns a client for the GraphQL endpoint url that keeps up to
// conns connections alive: one per concurrent worker, so that no request
// waits for a connection or dials a new one after warm-up.
func newClient(url string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: url}
}

// post sends body and returns the response body, read into buf (reused
// from request to request so that the tool allocates little per request).
func (c *client) post(body []byte, bearer string, buf *bytes.Buffer) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if c.forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", c.forwardedFor)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	// Read to the end, or the connection is not reused.
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, truncate(buf.String(), 200))
	}
	return buf.Bytes(), nil
}

// gqlError is a GraphQL error as authql's error presenter writes it.
type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// tokens is the part of an AuthPayload the tool reads.
type tokens struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// authMutation runs register, login or refresh (field) with vars and
// returns the new tokens.
func (c *client) authMutation(doc, field string, vars map[string]string, buf *bytes.Buffer) (tokens, outcome, error) {
	body, err := json.Marshal(map[string]any{"query": doc, "variables": vars})
	if err != nil {
		return tokens{}, failed, err
	}
	resp, err := c.post(body, "", buf)
	if err != nil {
		return tokens{}, failed, err
	}
	var r struct {
		Data   map[string]*tokens `json:"data"`
		Errors []gqlError         `json:"errors"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return tokens{}, failed, fmt.Errorf("%s: %v", field, err)
	}
	if len(r.Errors) > 0 {
		e := r.Errors[0]
		if e.Extensions.Code == "RATE_LIMITED" {
			return tokens{}, limited, fmt.Errorf("%s: %s (%s)", field, e.Message, e.Extensions.Code)
		}
		return tokens{}, failed, fmt.Errorf("%s: %s (%s)", field, e.Message, e.Extensions.Code)
	}
	t := r.Data[field]
	if t == nil || t.AccessToken == "" || t.RefreshToken == "" {
		return tokens{}, failed, fmt.Errorf("%s: no tokens in %s", field, truncate(string(resp), 200))
	}
	return *t, ok, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// register creates n users, one at a time: registering hashes a password,
// and the server's hashing pool refuses (RATE_LIMITED) what it cannot start
// within its wait, so concurrency would gain nothing here.
func register(ctx context.Context, c *client, prefix string, n int) ([]*user, error) {
	var buf bytes.Buffer
	users := make([]*user, 0, n)
	for i := range n {
		u := &user{email: fmt.Sprintf("%s-%d@bench.example.com", prefix, i)}
		for attempt := 0; ; attempt++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t, out, err := c.authMutation(registerDoc, "register", map[string]string{"email": u.email, "password": benchPassword}, &buf)
			if out == limited && attempt < 10 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("register %s: %w", u.email, err)
			}
			u.access, u.refresh = t.AccessToken, t.RefreshToken
			break
		}
		users = append(users, u)
	}
	return users, nil
}

// opRecord is what one worker saw of one operation during one run.
type opRecord struct {
	lat     []time.Duration // of the successful requests
	limited int
	failed  int
	lastErr string
}

// worker is one client connection's loop: it sends a request, waits for
// the answer, and sends the next.
type worker struct {
	c   *client
	u   *user
	buf bytes.Buffer
	seq int // the mix's position
	rec [numOps]opRecord
}

// step sends one request and says which operation it was and how it ended.
type step func(w *worker) (opKind, outcome, error)

// stepMe sends { me { id email } } with the worker's access token.
func stepMe(w *worker) (opKind, outcome, error) {
	resp, err := w.c.post(meBody, w.u.access, &w.buf)
	if err == nil && bytes.Contains(resp, []byte(`"errors"`)) {
		err = fmt.Errorf("me: %s", truncate(string(resp), 200))
		if bytes.Contains(resp, []byte("UNAUTHENTICATED")) {
			// The access token expired (a -target server with a short
			// AUTH_ACCESS_TTL): sign in again so that the rest of the run
			// measures me, not failures.
			w.relogin()
		}
	}
	if err != nil {
		return opMe, failed, err
	}
	return opMe, ok, nil
}

// stepLogin signs the worker's user in with its password.
func stepLogin(w *worker) (opKind, outcome, error) {
	t, out, err := w.c.authMutation(loginDoc, "login", map[string]string{"email": w.u.email, "password": benchPassword}, &w.buf)
	if out == ok {
		w.u.access, w.u.refresh = t.AccessToken, t.RefreshToken
	}
	return opLogin, out, err
}

// stepRefresh exchanges the worker's refresh token for a new pair and keeps
// the new one for its next request: a chain, as a client does.
func stepRefresh(w *worker) (opKind, outcome, error) {
	t, out, err := w.c.authMutation(refreshDoc, "refresh", map[string]string{"token": w.u.refresh}, &w.buf)
	switch out {
	case ok:
		w.u.access, w.u.refresh = t.AccessToken, t.RefreshToken
	case failed:
		// The chain is broken (say a reuse detection revoked the session):
		// start a new one so that the rest of the run measures refreshes.
		w.relogin()
	}
	return opRefresh, out, err
}

// stepMix sends 90% me, 9% refresh and 1% login, in a fixed order per
// worker (workers start at different places in it, so that their logins
// do not coincide).
func stepMix(w *worker) (opKind, outcome, error) {
	k := w.seq % 100
	w.seq++
	switch {
	case k == 0:
		return stepLogin(w)
	case k <= 9:
		return stepRefresh(w)
	}
	return stepMe(w)
}

// relogin signs in again, retrying while the hashing pool is busy.
func (w *worker) relogin() {
	for range 20 {
		if _, out, _ := stepLogin(w); out != limited {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loop runs s until deadline, or until stop is closed. Only requests that
// end before the deadline count, so that the rate is over exactly the
// run's duration; the request in flight at the deadline is let finish (not
// cancelled) so that its connection stays alive for the next run.
func (w *worker) loop(deadline time.Time, stop <-chan struct{}, s step) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		if !t0.Before(deadline) {
			return
		}
		op, out, err := s(w)
		t1 := time.Now()
		if t1.After(deadline) {
			return
		}
		r := &w.rec[op]
		switch out {
		case ok:
			r.lat = append(r.lat, t1.Sub(t0))
		case limited:
			r.limited++
		case failed:
			r.failed++
		}
		if err != nil {
			r.lastErr = err.Error()
		}
	}
}

// group is a set of workers running the same step.
type group struct {
	step    step
	workers []*worker
}

// opStats summarizes one operation over a group's workers in one run.
type opStats struct {
	N, Limited, Failed int
	Lat                latencies
	LastErr            string
}

// runStats is one run of a scenario: the measured group's operations and,
// for a scenario with background load, the background group's.
type runStats struct {
	Elapsed    time.Duration
	Ops        [numOps]opStats // measured group
	All        opStats         // measured group, every operation together
	Background [numOps]opStats
}

// Rate is the measured group's successful requests per second.
func (r runStats) Rate() float64 { return float64(r.All.N) / r.Elapsed.Seconds() }

// runGroups runs every group's workers for d and returns what they saw.
func runGroups(ctx context.Context, groups []group, d time.Duration) (runStats, error) {
	for _, g := range groups {
		for _, w := range g.workers {
			for op := range w.rec {
				w.rec[op] = opRecord{lat: w.rec[op].lat[:0]}
			}
		}
	}
	start := time.Now()
	deadline := start.Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		for _, w := range g.workers {
			wg.Go(func() { w.loop(deadline, ctx.Done(), g.step) })
		}
	}
	// An interrupt ends the run after the requests in flight, which are
	// not cut off mid-way.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		<-done
		return runStats{}, ctx.Err()
	}
	rs := runStats{Elapsed: deadline.Sub(start)}
	var all []time.Duration
	for gi, g := range groups {
		for op := range numOps {
			var lat []time.Duration
			var s opStats
			for _, w := range g.workers {
				r := &w.rec[op]
				lat = append(lat, r.lat...)
				s.Limited += r.limited
				s.Failed += r.failed
				if r.lastErr != "" {
					s.LastErr = r.lastErr
				}
			}
			s.N = len(lat)
			if gi == 0 {
				all = append(all, lat...)
				rs.All.Limited += s.Limited
				rs.All.Failed += s.Failed
				if s.LastErr != "" {
					rs.All.LastErr = s.LastErr
				}
			}
			s.Lat = summarize(lat)
			if gi == 0 {
				rs.Ops[op] = s
			} else {
				addStats(&rs.Background[op], s)
			}
		}
	}
	rs.All.N = len(all)
	rs.All.Lat = summarize(all)
	return rs, nil
}

// addStats adds s's counts to dst (background groups report counts only).
func addStats(dst *opStats, s opStats) {
	dst.N += s.N
	dst.Limited += s.Limited
	dst.Failed += s.Failed
	if s.LastErr != "" {
		dst.LastErr = s.LastErr
	}
}
