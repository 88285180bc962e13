package auth

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// newReplica is a Service on db, listening to the other replicas through
// listenDSN (on PostgreSQL), with a short sync timeout.
func newReplica(t *testing.T, ctx context.Context, db *gorm.DB, listenDSN string) *Service {
	t.Helper()
	s, err := NewService(ctx, db, []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1},
		SyncTimeout: 300 * time.Millisecond,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if listenDSN != "" {
		lctx, cancel := context.WithCancel(ctx)
		l, err := s.Listen(lctx, listenDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); <-l.Done() })
	}
	return s
}

// nextLive returns the next event of sub, failing the test when none
// comes within a deadline or the subscription ended.
func nextLive(t *testing.T, sub *LiveSub) models.LiveEvent {
	t.Helper()
	return nextOf(t, "live event", sub.C, sub.Lagged)
}

// nextOf returns the next value of c, failing the test when none comes
// within a deadline or c was closed (lagged tells whether for lagging).
func nextOf[E any](t *testing.T, what string, c <-chan E, lagged func() bool) E {
	t.Helper()
	select {
	case e, ok := <-c:
		if !ok {
			t.Fatalf("subscription ended (lagged %v)", lagged())
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s within 20s", what)
	}
	var zero E
	return zero
}

// wantLive fails the test unless the next events of sub are of the types.
func wantLive(t *testing.T, sub *LiveSub, userID string, types ...string) []models.LiveEvent {
	t.Helper()
	var got []models.LiveEvent
	for _, typ := range types {
		e := nextLive(t, sub)
		if e.Type != typ || (userID != "" && e.UserID != userID) {
			t.Fatalf("event %+v, want %s of user %s", e, typ, userID)
		}
		got = append(got, e)
	}
	return got
}

// An event recorded by a flow reaches this process's subscribers of its
// user, and those of every user, once its transaction commits, and once
// only: on PostgreSQL its own notification comes back through the
// listener too, and is dropped.
func TestLiveDeliveredOnce(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		listen := ""
		if strings.HasPrefix(dsn, "postgres") {
			listen = dsn
		}
		db := testdb.Open(t, dsn)
		s := newReplica(t, ctx, db, listen)
		g := registerNth(t, s, ctx, 1)
		other := registerNth(t, s, ctx, 2)
		mine, all, theirs := s.Live().Subscribe(g.User.ID), s.Live().Subscribe(""), s.Live().Subscribe(other.User.ID)
		defer mine.Cancel()
		defer all.Cancel()
		defer theirs.Cancel()

		l, err := s.Login(ctx, g.User.Email, "password1")
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Authenticate(ctx, l.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Logout(ctx, p, false); err != nil {
			t.Fatal(err)
		}
		// A last event, recorded by another process on PostgreSQL: it
		// arrives through the listener after the notifications of the
		// events above, so any duplicate of theirs would come first.
		marker := db
		if listen != "" {
			marker = testdb.OpenAsIs(t, dsn)
		}
		if _, err := models.SetUserRoles(ctx, marker, g.User.ID, []string{models.RoleUser, models.RoleService}); err != nil {
			t.Fatal(err)
		}
		events := wantLive(t, mine, g.User.ID, models.LiveSessionCreated, models.LiveSessionRevoked, models.LiveRolesChanged)
		if *events[0].SessionID != l.SessionID || *events[1].SessionID != l.SessionID {
			t.Errorf("events %+v, want session %s created and revoked", events, l.SessionID)
		}
		wantLive(t, all, g.User.ID, models.LiveSessionCreated, models.LiveSessionRevoked, models.LiveRolesChanged)
		select {
		case e := <-mine.C:
			t.Errorf("a further event %+v, want none", e)
		case e := <-all.C:
			t.Errorf("a further event for every user %+v, want none", e)
		case e := <-theirs.C:
			t.Errorf("another user's subscription got %+v", e)
		default:
		}
	})
}

// An event recorded on one replica reaches the subscribers of another
// sharing its PostgreSQL database.
func TestLiveAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	ctx := context.Background()
	a := newReplica(t, ctx, testdb.Open(t, dsn), dsn)
	b := newReplica(t, ctx, testdb.OpenAsIs(t, dsn), dsn)
	sub := b.Live().Subscribe("")
	defer sub.Cancel()
	g := registerNth(t, a, ctx, 1)
	wantLive(t, sub, g.User.ID, models.LiveSessionCreated)
	p, err := a.Authenticate(ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	if e := wantLive(t, sub, g.User.ID, models.LiveSessionRevoked)[0]; *e.SessionID != g.SessionID {
		t.Errorf("revoked %s, want %s", *e.SessionID, g.SessionID)
	}
}

// A replica whose listening connection was cut re-reads, once it is back,
// the live events it missed, and delivers them.
func TestLiveResyncAfterReconnect(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	ctx := context.Background()
	a := newReplica(t, ctx, testdb.Open(t, dsn), dsn)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPartitionProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	b := newReplica(t, ctx, testdb.OpenAsIs(t, dsn), u.String())

	sub := b.Live().Subscribe("")
	defer sub.Cancel()
	g := registerNth(t, a, ctx, 1)
	wantLive(t, sub, g.User.ID, models.LiveSessionCreated)
	proxy.partition()
	p, err := a.Authenticate(ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to notice the cut", func() bool { return !b.Synced() })
	select {
	case e := <-sub.C:
		t.Fatalf("event %+v through a cut connection", e)
	default:
	}
	proxy.heal()
	eventually(t, "b to resync", b.Synced)
	wantLive(t, sub, g.User.ID, models.LiveSessionRevoked)
}

// A subscriber that falls a buffer behind is dropped, its channel closed
// and Lagged set; the others go on.
func TestLiveLaggingSubscriberDropped(t *testing.T) {
	t.Parallel()
	h := newLiveHub(0)
	slow, fast := h.Subscribe("u1"), h.Subscribe("u1")
	defer fast.Cancel()
	for i := range liveBuffer + 1 {
		h.Publish([]models.LiveEvent{{ID: int64(i + 1), Type: models.LiveMfaChanged, UserID: "u1"}})
		if e := <-fast.C; e.ID != int64(i+1) {
			t.Fatalf("fast subscriber got %d, want %d", e.ID, i+1)
		}
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != liveBuffer || !slow.Lagged() || fast.Lagged() {
		t.Errorf("slow subscriber: %d events then closed, lagged %v (fast lagged %v); want %d, true, false", n, slow.Lagged(), fast.Lagged(), liveBuffer)
	}
	if users, _ := h.Subscribers(); users != 1 {
		t.Errorf("%d subscriptions left, want 1", users)
	}
}

// One transaction that ends every session of a user, as many as
// Config.MaxSessions allows, does not drop a subscriber that keeps up:
// the whole change fits its buffer before it reads any of it.
func TestLiveLargeChangeFitsBuffer(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		const sessions = 150
		e := newFlowEnv(t, dsn, func(c *Config) { c.MaxSessions = sessions })
		g := e.register(t)
		sub := e.s.Live().Subscribe(g.User.ID)
		defer sub.Cancel()
		err := e.s.db.Transaction(func(tx *gorm.DB) error {
			events := []models.LiveEvent{models.NewLiveEvent(models.LivePasswordChanged, g.User.ID, "", nil)}
			for range sessions {
				events = append(events, models.NewLiveEvent(models.LiveSessionRevoked, g.User.ID, uuid.NewString(), nil))
			}
			return models.RecordLive(tx, events...)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range sessions + 1 {
			if _, ok := <-sub.C; !ok {
				t.Fatalf("subscription closed after %d of %d events (lagged %v)", i, sessions+1, sub.Lagged())
			}
		}
	})
}

// Purge deletes the live events older than the retention, and only those.
func TestPurgeLiveEvents(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newFlowEnv(t, dsn)
		old, kept := e.register(t), e.register(t)
		// The first registration's event aged past the retention (an
		// hour by default: the access TTL here is 15m).
		if err := e.s.db.Model(&models.LiveEvent{}).Where("user_id = ?", old.User.ID).
			Update("at", models.Now().Add(-DefaultEventsRetention-time.Minute)).Error; err != nil {
			t.Fatal(err)
		}
		if err := e.s.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		var left []models.LiveEvent
		if err := e.s.db.Find(&left).Error; err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || left[0].UserID != kept.User.ID {
			t.Errorf("left after the purge: %+v, want the recent event of %s alone", left, kept.User.ID)
		}
	})
}
