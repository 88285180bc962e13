// Package httpapi is authql's HTTP surface: the routes (GraphQL at
// /query, the playground, the JWKS, health, readiness, metrics, the
// example frontend), the middleware in front of them (request log and
// metrics, no-store, body limit, CORS), the per-client connection cap,
// and the graceful shutdown of the servers.
package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/internal/playground"
)

// Config is the HTTP layer's configuration; the command fills it from the
// environment (see the root package's config.go for the variables).
type Config struct {
	// Production (AUTH_ENV=production) hides the GraphQL validator's
	// suggestions and keeps /metrics off the API's port unless
	// MetricsPublic.
	Production    bool
	Introspection bool
	Playground    bool
	MaxBodyBytes  int64
	MaxDepth      int
	MaxComplexity int
	// MaxSessions bounds the length of mySessions (graph.Options.MaxSessions).
	MaxSessions int

	Metrics     bool   // serve /metrics
	MetricsAddr string // "": on the API's port; else on a listener of its own (see Metrics.Serve)
	// MetricsPublic serves /metrics on the API's port in production too
	// (AUTH_METRICS_PUBLIC).
	MetricsPublic bool
	// ExampleUI serves examples/web at ExamplePath (see ExampleOrigins).
	ExampleUI bool

	// The websockets' limits (AUTH_WS_*); zero values take
	// graph.DefaultSocketOptions'.
	WSMaxSocketsPerUser int
	WSMaxSubscriptions  int
	WSMaxMessageBytes   int64
	WSPingInterval      time.Duration
	// WSInitTimeout is the wait for connection_init (10 s; tests shorten it).
	WSInitTimeout time.Duration
	// WSClockPoll: see graph.SocketOptions.ClockPoll (tests only).
	WSClockPoll time.Duration
	// PublicURL is the server's external base URL (AUTH_PUBLIC_URL), without
	// a trailing slash; "" builds the discovery document's URLs from each
	// request (never in production).
	PublicURL string

	// EventsMaxStreams bounds each user's open revocation-feed streams
	// (AUTH_EVENTS_MAX_STREAMS), EventsMaxStreamsTotal everyone's, and
	// EventsHeartbeat is how often an idle one is pinged (0: the
	// defaults, see events.go).
	EventsMaxStreams      int
	EventsMaxStreamsTotal int
	EventsHeartbeat       time.Duration
}

// DefaultMaxBodyBytes is the default bound of a request body (AUTH_MAX_BODY_BYTES).
const DefaultMaxBodyBytes = 64 << 10

// DefaultConfig is the configuration when no variable is set.
func DefaultConfig() Config {
	return Config{
		Introspection: graph.DefaultOptions.Introspection,
		Playground:    true,
		MaxBodyBytes:  DefaultMaxBodyBytes,
		MaxDepth:      graph.DefaultOptions.MaxDepth,
		MaxComplexity: graph.DefaultOptions.MaxComplexity,
		MaxSessions:   auth.DefaultMaxSessions,
		Metrics:       true,

		WSMaxSocketsPerUser: graph.DefaultSocketOptions.MaxPerUser,
		WSMaxSubscriptions:  graph.DefaultSocketOptions.MaxSubscriptions,
		WSMaxMessageBytes:   graph.DefaultSocketOptions.MaxMessageBytes,
		WSPingInterval:      graph.DefaultSocketOptions.PingInterval,
		EventsMaxStreams:    DefaultEventsMaxStreams,
	}
}

// MetricsOnPort reports whether /metrics is served on the API's port. In
// production only with AUTH_METRICS_PUBLIC=true: the metrics tell anyone
// who can reach the API its traffic, its error rates and its database
// pool's state, and "block it at the proxy" is too easily forgotten.
func (cfg Config) MetricsOnPort() bool {
	return cfg.Metrics && cfg.MetricsAddr == "" && (!cfg.Production || cfg.MetricsPublic)
}

// New returns the whole HTTP surface of authql. m may be nil (no metrics).
func New(cfg Config, svc *auth.Service, log *slog.Logger, m *Metrics, ready *Readiness) *Handler {
	mux := http.NewServeMux()
	opts := socketOptions(cfg)
	var sockets *graph.Sockets
	if m != nil {
		opts.OnClose = m.watchSockets(func() int { return sockets.Open() })
	}
	sockets = graph.NewSockets(svc, opts)
	addRoutes(mux, cfg, svc, log, m, ready, sockets)
	return &Handler{Handler: observe(log, m, mux), sockets: sockets}
}

// addRoutes lists every route.
func addRoutes(mux *http.ServeMux, cfg Config, svc *auth.Service, log *slog.Logger, m *Metrics, ready *Readiness, sockets *graph.Sockets) {
	docs := graph.NewDocumentCache(graph.DefaultDocumentCacheBytes)
	if m != nil {
		m.watchDocuments(docs)
	}
	gql := graph.NewHandler(svc, log, graph.Options{
		Introspection: cfg.Introspection,
		MaxDepth:      cfg.MaxDepth,
		MaxComplexity: cfg.MaxComplexity,
		NoSuggestions: cfg.Production,
		MaxSessions:   cfg.MaxSessions,
		DocumentCache: docs,
		Sockets:       sockets,
	})
	mux.Handle("POST /query", cors(svc.OriginAllowed, noStore(limitBody(cfg.MaxBodyBytes, svc.Middleware(gql)))))
	// Subscriptions: the websocket upgrade. No svc.Middleware: a socket's
	// token comes from its connection_init only, and its Origin is checked
	// against the same allowed origins (graph.SocketOptions.OriginAllowed).
	mux.Handle("GET /query", upgradeOnly(gql))
	mux.Handle("OPTIONS /query", cors(svc.OriginAllowed, nil))
	// The revocation feed, for other services (not browsers: no CORS).
	events := newFeed(cfg, svc, log, ready)
	if m != nil {
		m.watchFeed(events)
	}
	mux.Handle("GET /events", svc.Middleware(events))
	if cfg.Playground {
		mux.Handle("GET /{$}", playground.Handler("authql", "/query"))
		mux.Handle("GET "+playground.AssetsPath, playground.AssetsHandler())
	}
	if cfg.ExampleUI {
		mux.Handle("GET "+ExamplePath, exampleHandler())
	}
	mux.Handle("GET "+JWKSPath, jwksHandler(svc))
	mux.Handle("GET "+DiscoveryPath, discoveryHandler(cfg.PublicURL, svc))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", ready)
	if cfg.MetricsOnPort() && m != nil {
		// Not for the public (see AUTH_METRICS_ADDR): block it at the
		// proxy. With AUTH_METRICS_ADDR, MetricsHandler serves the same
		// route alone on that listener.
		mux.Handle(metricsRoute, m.handler())
	}
}

// metricsRoute is where the metrics are served, on the API's port or on
// AUTH_METRICS_ADDR's listener.
const metricsRoute = "GET /metrics"

// MetricsHandler is the whole HTTP surface of the metrics listener
// (AUTH_METRICS_ADDR): /metrics alone.
func MetricsHandler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(metricsRoute, m.handler())
	return mux
}
