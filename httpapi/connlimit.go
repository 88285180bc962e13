package httpapi

import (
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxConnsPerClient is AUTH_MAX_CONNS_PER_CLIENT's default. An idle
// keep-alive connection costs the server about 18 KiB (measured:
// BenchmarkIdleConnsFromOneClient, BENCHMARKS.md), so one address holds at
// most about 5 MiB; a browser keeps 6 connections to a
// host, and an office behind one NAT address a few dozen to this API.
const DefaultMaxConnsPerClient = 256

// LimitConns returns ln with at most max connections open at once per
// client address: the connection's remote address, an IPv6 one by its /64
// (as the rate limits count them: a single host is routinely given a whole
// /64). A connection past the cap is closed as soon as it is accepted,
// before anything is read from it or a goroutine is started for it.
//
// Connections from a trusted proxy (AUTH_TRUSTED_PROXIES) are not counted:
// every client behind the proxy arrives over the proxy's connections, so a
// cap on its address would cap them all together, and the client a
// request comes from is only known from X-Forwarded-For, once a request has
// been read. Behind a proxy the cap belongs on the proxy, which sees the
// clients' own connections.
//
// m counts the connections refused (it may be nil).
func LimitConns(ln net.Listener, max int, trusted []netip.Prefix, m *Metrics) net.Listener {
	var refused prometheus.Counter
	if m != nil {
		refused = m.connsRefused
	}
	return &connLimiter{Listener: ln, max: max, trusted: trusted, refused: refused, open: map[netip.Prefix]int{}}
}

type connLimiter struct {
	net.Listener
	max     int
	trusted []netip.Prefix
	refused prometheus.Counter

	mu   sync.Mutex
	open map[netip.Prefix]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, counted := l.client(c.RemoteAddr())
		if !counted {
			return c, nil
		}
		l.mu.Lock()
		full := l.open[key] >= l.max
		if !full {
			l.open[key]++
		}
		l.mu.Unlock()
		if !full {
			return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			// A reset rather than a close handshake: nothing of it stays
			// in the server's TIME_WAIT.
			tc.SetLinger(0)
		}
		c.Close()
		if l.refused != nil {
			l.refused.Inc()
		}
	}
}

// client returns the key a connection from addr counts under, and false
// for one not counted (a trusted proxy, an address that is not IP).
func (l *connLimiter) client(addr net.Addr) (netip.Prefix, bool) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	for _, p := range l.trusted {
		if p.Contains(a) {
			return netip.Prefix{}, false
		}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p, true
}

func (l *connLimiter) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// countedConn gives its place back when closed, once.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
