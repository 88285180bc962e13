package auth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// partitionProxy forwards TCP connections to a server until partitioned:
// then it stops forwarding without closing anything, as a network cut does,
// and connections opened meanwhile hang. Healing closes every connection
// that lived through the cut and forwards new ones again.
type partitionProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newPartitionProxy(t *testing.T, target string) *partitionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go p.accept()
	return p
}

func (p *partitionProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies from src to dst, dropping what it reads while partitioned.
func (p *partitionProxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if !cut {
			if _, err := dst.Write(buf[:n]); err != nil {
				src.Close()
				return
			}
		}
	}
}

func (p *partitionProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

func (p *partitionProxy) heal() {
	p.closeAll()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *partitionProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenerNoticesASilentPartition cuts the listening connection the way
// a network partition does, closing nothing: the listener must notice by
// itself (nothing else will tell it), refuse tokens past the sync timeout,
// and once the network heals re-read the logout it missed.
func TestListenerNoticesASilentPartition(t *testing.T) {
	dsn := testdb.Postgres(t)
	db := testdb.Open(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := NewService(ctx, db, []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1},
		SyncTimeout: 300 * time.Millisecond,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Only the listener goes through the proxy; the pool does not.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPartitionProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	l, err := s.Listen(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-l.Done() }()

	g, err := s.Register(ctx, "ada@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}

	proxy.partition()
	// Another replica logs the session out: committed, notified, lost.
	if _, err := models.RevokeSessions(ctx, db, p.UserID, p.SessionID, models.Revoke{At: time.Now().UTC(), For: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tokens refused as unavailable", func() bool {
		_, err := s.Authenticate(ctx, g.AccessToken)
		if err != nil && models.ErrorCode(err) != models.ServiceUnavailable {
			t.Fatalf("Authenticate while partitioned: %v, want ServiceUnavailable", err)
		}
		return err != nil
	})
	if s.Synced() || l.PID() != 0 {
		t.Errorf("partitioned: synced %v, listener pid %d; want false, 0", s.Synced(), l.PID())
	}

	proxy.heal()
	eventually(t, "the listener to resync", s.Synced)
	if _, err := s.Authenticate(ctx, g.AccessToken); models.ErrorCode(err) != models.Unauthenticated {
		t.Fatalf("Authenticate after resync: %v, want the logout made meanwhile (Unauthenticated)", err)
	}
	if l.PID() == 0 {
		t.Error("listener pid 0 after resync")
	}
}
