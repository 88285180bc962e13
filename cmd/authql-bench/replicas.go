package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// propagationWait is how long a logout on one replica may take to be
// refused on another before the tool gives up on it: the servers' own
// AUTH_SYNC_TIMEOUT, past which a replica out of touch refuses everything.
const propagationWait = 5 * time.Second

// revocationStats is what the replicas scenario saw: how long a logout on
// replica A took to be refused on each other replica.
type revocationStats struct {
	Logouts  int // on A
	Replicas int // in all, A included
	Refusals int // observed, one per logout and other replica
	First    int // refusals seen by the first request after A answered
}

var (
	meIDBody  = []byte(`{"query":"{ me { id } }"}`)
	logoutDoc = []byte(`{"query":"mutation { logout }"}`)
)

// meCode sends { me { id } } with access and returns the error code of the
// answer, "" when it was answered.
func meCode(c *client, access string, buf *bytes.Buffer) (string, error) {
	resp, err := c.post(meIDBody, access, buf)
	if err != nil {
		return "", err
	}
	var r struct {
		Data struct {
			Me *struct{ ID string } `json:"me"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return "", fmt.Errorf("me: %v", err)
	}
	if len(r.Errors) > 0 {
		return r.Errors[0].Extensions.Code, nil
	}
	if r.Data.Me == nil || r.Data.Me.ID == "" {
		return "", fmt.Errorf("me: no id in %s", truncate(string(resp), 200))
	}
	return "", nil
}

// revocationResult builds the replicas scenario's result from the delays
// between A's logout answers and the refusals, over elapsed.
func revocationResult(db string, lat []time.Duration, st revocationStats, elapsed time.Duration) scenarioResult {
	all := opStats{N: len(lat), Lat: summarize(slices.Clone(lat))}
	return scenarioResult{
		DB: db, Name: "replicas", Title: fmt.Sprintf("logout on one of %d replicas, refused on the others", st.Replicas),
		Conns: fmt.Sprintf("%d replicas", st.Replicas), Runs: []runStats{{Elapsed: elapsed, All: all}}, Revocation: &st,
	}
}

// measureRevocation starts two more servers on dsn beside a (the running
// one), and n times logs u in on A, checks the token on the others, logs it
// out on A and polls the others back to back until they refuse it.
func (b *dbBench) measureRevocation(ctx context.Context, a *server, dsn string, u *user) (scenarioResult, error) {
	replicas := []*client{newClient(a.url, 1)}
	for _, name := range []string{"b", "c"} {
		fmt.Fprintf(b.log, "%s: starting replica %s…\n", b.db, name)
		srv, err := startServer(ctx, b.bin, append(slices.Clone(b.env), "DATABASE_URL="+dsn), b.cpus, filepath.Join(b.tmp, b.db+"-replica-"+name+".log"))
		if err != nil {
			return scenarioResult{}, fmt.Errorf("replica %s: %w", name, err)
		}
		defer srv.stop()
		replicas = append(replicas, newClient(srv.url, 1))
	}
	others := replicas[1:]
	st := revocationStats{Logouts: b.o.revocations, Replicas: len(replicas)}
	var lat []time.Duration
	var buf bytes.Buffer
	t0 := time.Now()
	fmt.Fprintf(b.log, "%s: %d logouts on replica A, polled on B and C…\n", b.db, st.Logouts)
	for i := range st.Logouts {
		if err := ctx.Err(); err != nil {
			return scenarioResult{}, err
		}
		t, _, err := replicas[0].authMutation(loginDoc, "login", map[string]string{"email": u.email, "password": benchPassword}, &buf)
		if err != nil {
			return scenarioResult{}, fmt.Errorf("logout %d: %w", i+1, err)
		}
		for j, c := range others {
			if code, err := meCode(c, t.AccessToken, &buf); err != nil || code != "" {
				return scenarioResult{}, fmt.Errorf("logout %d: me on replica %c before the logout: %q %v", i+1, 'B'+j, code, err)
			}
		}
		resp, err := replicas[0].post(logoutDoc, t.AccessToken, &buf)
		if err != nil {
			return scenarioResult{}, fmt.Errorf("logout %d: %w", i+1, err)
		}
		if !bytes.Contains(resp, []byte(`"logout":true`)) {
			return scenarioResult{}, fmt.Errorf("logout %d: %s", i+1, truncate(string(resp), 200))
		}
		// From the moment A has answered: the logout is committed. Back to
		// back, no sleep between polls: the resolution is one request.
		start := time.Now()
		polls := make([]int, len(others))
		refused := make([]bool, len(others))
		for left := len(others); left > 0; {
			for j, c := range others {
				if refused[j] {
					continue
				}
				polls[j]++
				code, err := meCode(c, t.AccessToken, &buf)
				if err != nil {
					return scenarioResult{}, fmt.Errorf("logout %d: me on replica %c: %w", i+1, 'B'+j, err)
				}
				switch code {
				case "":
				case "UNAUTHENTICATED":
					lat = append(lat, time.Since(start))
					refused[j] = true
					left--
					st.Refusals++
					if polls[j] == 1 {
						st.First++
					}
				default:
					return scenarioResult{}, fmt.Errorf("logout %d: me on replica %c: %s", i+1, 'B'+j, code)
				}
			}
			if left > 0 && time.Since(start) > propagationWait {
				return scenarioResult{}, fmt.Errorf("logout %d on A not refused on every other replica after %s", i+1, propagationWait)
			}
		}
	}
	res := revocationResult(b.db, lat, st, time.Since(t0))
	fmt.Fprintf(b.log, "%s replicas: p50 %s, p99 %s, max %s, refused by the first request %d/%d\n", b.db,
		fmtDur(res.med().All.Lat.P50), fmtDur(res.med().All.Lat.P99), fmtDur(res.med().All.Lat.Max), st.First, st.Refusals)
	return res, nil
}
