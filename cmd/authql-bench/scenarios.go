package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// scenario is one load shape the tool measures.
type scenario struct {
	Name  string // short, for flags and the table
	Title string // for the report
	// groups builds the scenario's workers over the registered users; the
	// first group is the one measured.
	groups func(c *client, users []*user) []group
}

// scenarioSpec holds the connection counts the scenarios use.
type scenarioSpec struct {
	Conns     int // reads: me, mix, me during the flood
	SlowConns int // login and refresh
	Flooders  int // login clients of the flood
}

// usersNeeded is how many accounts the scenarios of spec use.
func (s scenarioSpec) usersNeeded() int {
	return max(s.Conns+s.Flooders, s.SlowConns)
}

// scenarios returns every scenario, in the order they run. me runs first,
// on a server that has only registered the users, so that its peak RSS is
// that of the me load rather than of earlier login floods.
func scenarios(spec scenarioSpec) []scenario {
	workers := func(c *client, users []*user, from, n int) []*worker {
		ws := make([]*worker, n)
		for i := range ws {
			// The address goes with the user, so that each user signs in
			// from one address in every scenario.
			ws[i] = &worker{c: c.as(workerAddr(from + i)), u: users[from+i], seq: i * 37}
		}
		return ws
	}
	return []scenario{
		{"me", "`me`", func(c *client, u []*user) []group {
			return []group{{stepMe, workers(c, u, 0, spec.Conns)}}
		}},
		{"refresh", "chained `refresh`", func(c *client, u []*user) []group {
			return []group{{stepRefresh, workers(c, u, 0, spec.SlowConns)}}
		}},
		{"login", "`login`", func(c *client, u []*user) []group {
			return []group{{stepLogin, workers(c, u, 0, spec.SlowConns)}}
		}},
		{"mix", "mix: 90% `me`, 9% `refresh`, 1% `login`", func(c *client, u []*user) []group {
			return []group{{stepMix, workers(c, u, 0, spec.Conns)}}
		}},
		{"flood", "`me` during a login flood", func(c *client, u []*user) []group {
			return []group{
				{stepMe, workers(c, u, 0, spec.Conns)},
				{stepLogin, workers(c, u, spec.Conns, spec.Flooders)},
			}
		}},
	}
}

// selectScenarios returns the scenarios named in list (comma-separated),
// in their fixed order.
func selectScenarios(all []scenario, list string) ([]scenario, error) {
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("-scenarios: unknown scenario %q (have me, refresh, login, mix, flood, and with -pg replicas, sockets, bigdb)", n)
	}
	if len(out) == 0 {
		return nil, errors.New("-scenarios: none selected")
	}
	return out, nil
}

// checkServer fails fast when url does not answer GraphQL as authql does.
func checkServer(c *client, u *user) error {
	var buf bytes.Buffer
	resp, err := c.post(meBody, u.access, &buf)
	if err != nil {
		return err
	}
	if bytes.Contains(resp, []byte(`"errors"`)) {
		return fmt.Errorf("me failed: %s", truncate(string(resp), 300))
	}
	return nil
}
