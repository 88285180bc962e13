package httpapi

import (
	"database/sql"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/graph"
)

// Metrics are the Prometheus metrics of one server. They live in a registry
// of their own rather than the global default one, so that tests can run
// many servers in one process, each with its own figures.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	authEvents *prometheus.CounterVec
	hashWait   prometheus.Histogram
	// connsRefused counts connections closed by the per-client cap
	// (AUTH_MAX_CONNS_PER_CLIENT).
	connsRefused prometheus.Counter
	// mail counts delivery attempts by outcome (see mail.Sender).
	mail *prometheus.CounterVec
	// series holds the requests' and duration's children by their label
	// values: the vectors' own look-up hashes and checks the values on
	// every request, which was a few percent of a `me`. It holds no more
	// entries than the two vectors hold series (the operation label is
	// bounded, see graph.OperationLabel).
	seriesMu sync.RWMutex
	series   map[requestLabels]requestSeries
}

// requestLabels are the label values of a GraphQL request's metrics.
type requestLabels struct{ operation, outcome string }

// requestSeries are the metrics of one requestLabels.
type requestSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// requestBuckets run from half a millisecond (a me answered from memory)
// to 10 s (a login queued behind a flood).
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// hashWaitBuckets: most hashes wait 0 (the first bucket); AUTH_HASH_WAIT is
// 1 s by default and at most 1 m.
var hashWaitBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics returns the metrics with the Go runtime's and the process's.
// The database's and the service's are added by Watch, once they exist.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		series: make(map[requestLabels]requestSeries),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authql_graphql_requests_total",
			Help: "GraphQL requests by operation (root fields, or invalid) and outcome (ok or the first error's code).",
		}, []string{"operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authql_graphql_request_duration_seconds",
			Help:    "Time from a GraphQL request's arrival to its answer, body reading included, by operation and outcome.",
			Buckets: requestBuckets,
		}, []string{"operation", "outcome"}),
		authEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authql_auth_events_total",
			Help: "Audited authentication events by type (LOGIN, REFRESH, ...) and outcome (SUCCESS, FAILURE).",
		}, []string{"type", "outcome"}),
		hashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authql_password_hash_wait_seconds",
			Help:    "Time a password hash waited for a worker, including waits that ended in RATE_LIMITED (AUTH_HASH_WAIT).",
			Buckets: hashWaitBuckets,
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authql_connections_refused_total",
			Help: "Connections closed at once because their client address had AUTH_MAX_CONNS_PER_CLIENT open already.",
		}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authql_mail_total",
			Help: "Mail delivery attempts by outcome: sent, retried (failed, tried again later) or failed (given up).",
		}, []string{"outcome"}),
	}
	// Every outcome is a series from the start, so that a rate of failed
	// mails reads 0, not "no data", until the first one.
	for _, o := range []string{mail.OutcomeSent, mail.OutcomeRetried, mail.OutcomeFailed} {
		m.mail.WithLabelValues(o)
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.authEvents, m.hashWait, m.connsRefused, m.mail,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

var _ auth.Observer = (*Metrics)(nil)

// AuthEvent counts one audited event. Both labels are names of fixed
// enums (models.AuditEventType, models.AuditOutcome), never user input.
func (m *Metrics) AuthEvent(typ, outcome string) {
	m.authEvents.WithLabelValues(typ, outcome).Inc()
}

var _ mail.Observer = (*Metrics)(nil)

// MailOutcome counts one delivery attempt; outcome is one of mail's
// Outcome constants.
func (m *Metrics) MailOutcome(outcome string) { m.mail.WithLabelValues(outcome).Inc() }

// HashWait records how long a password hash waited for a worker.
func (m *Metrics) HashWait(d time.Duration) { m.hashWait.Observe(d.Seconds()) }

// Watch adds the metrics read from the database pool and from svc when
// scraped.
func (m *Metrics) Watch(db *sql.DB, svc *auth.Service) {
	m.reg.MustRegister(
		collectors.NewDBStatsCollector(db, "authql"),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_revoked_sessions",
			Help: "Revoked session and token ids held in memory until the access tokens they match expire.",
		}, func() float64 { return float64(svc.RevokedCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_audit_queue_events",
			Help: "Audit events waiting for the database (many during an outage: they are kept and retried).",
		}, func() float64 { return float64(svc.AuditQueue().Events) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_audit_queue_bytes",
			Help: "Estimated memory of the audit events waiting for the database; sign-ins are refused at 90% of AUTH_AUDIT_QUEUE_BYTES.",
		}, func() float64 { return float64(svc.AuditQueue().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_audit_queue_full",
			Help: "1 while the audit queue is nearly full and sign-ins get SERVICE_UNAVAILABLE, else 0.",
		}, func() float64 { return b2f(svc.AuditQueue().Full) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_audit_write_failing",
			Help: "1 while the database refuses the audit writer's INSERTs (down, or out of disk), else 0.",
		}, func() float64 { return b2f(svc.AuditQueue().Failing) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authql_audit_events_dropped_total",
			Help: "Audit events given up because the audit queue was full (AUTH_AUDIT_QUEUE_BYTES).",
		}, func() float64 { return float64(svc.AuditQueue().Dropped) }),
	)
}

// watchDocuments adds the size of the GraphQL handler's document cache.
func (m *Metrics) watchDocuments(docs *graph.DocumentCache) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_graphql_document_cache_entries",
			Help: "Parsed and validated GraphQL documents kept for reuse.",
		}, func() float64 { return float64(docs.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_graphql_document_cache_bytes",
			Help: "Estimated memory held by the GraphQL documents kept, at most a fixed budget.",
		}, func() float64 { return float64(docs.Bytes()) }),
	)
}

// watchFeed adds the revocation feed's open streams.
func (m *Metrics) watchFeed(f *feed) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_events_streams",
			Help: "Open revocation-feed streams (GET /events), at most AUTH_EVENTS_MAX_STREAMS per user.",
		}, func() float64 { return float64(f.Open()) }),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// request records one GraphQL request.
func (m *Metrics) request(operation, outcome string, d time.Duration) {
	key := requestLabels{operation, outcome}
	m.seriesMu.RLock()
	rs, ok := m.series[key]
	m.seriesMu.RUnlock()
	if !ok {
		rs = requestSeries{
			requests: m.requests.WithLabelValues(operation, outcome),
			duration: m.duration.WithLabelValues(operation, outcome),
		}
		m.seriesMu.Lock()
		m.series[key] = rs
		m.seriesMu.Unlock()
	}
	rs.requests.Inc()
	rs.duration.Observe(d.Seconds())
}

// handler serves the metrics in Prometheus's text format.
func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve serves the metrics alone (MetricsHandler) on a listener of their
// own at addr (AUTH_METRICS_ADDR), which operators keep off the public
// network, until the returned server is shut down.
func (m *Metrics) Serve(addr string, errorLog *log.Logger, stdout io.Writer) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("AUTH_METRICS_ADDR: %w", err)
	}
	srv := &http.Server{Handler: MetricsHandler(m), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	fmt.Fprintf(stdout, "authql metrics on http://%s/metrics\n", ln.Addr())
	go srv.Serve(ln)
	return srv, nil
}
