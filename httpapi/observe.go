package httpapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/authql/authql/graph"
	"github.com/authql/authql/models"
)

// NewLogger returns the server's logger: JSON lines, or text when format
// is "text" or is "" and w is a terminal (a person reading). Whatever is
// logged with a request's context carries that request's id.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "text" || (format == "" && IsTerminal(w)) {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(requestIDHandler{h})
}

// IsTerminal reports whether w is a terminal; a writer that is not a file
// (a pipe in a test, a buffer) is not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// LogBuffer gathers log lines into few writes. One line per request is one
// write(2) per request when written straight to stderr, which measured at
// about a fifth of the server's throughput on `me`; buffered, lines go out
// in 64 KiB writes or every logFlushEvery, whichever comes first. The price
// is that a process killed outright (SIGKILL, a crash) loses the lines of
// its last logFlushEvery; a shutdown flushes everything.
type LogBuffer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// logFlushEvery bounds how long a log line waits in a LogBuffer.
const logFlushEvery = 100 * time.Millisecond

// NewLogBuffer returns a LogBuffer writing to w; Run flushes it.
func NewLogBuffer(w io.Writer) *LogBuffer {
	return &LogBuffer{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write adds p to the buffer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes out the buffered lines.
func (b *LogBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Run flushes b every logFlushEvery until ctx is done, then once more.
func (b *LogBuffer) Run(ctx context.Context) {
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-t.C:
			b.Flush()
		}
	}
}

// requestIDHandler adds the request id to every record logged with a
// request's context (the error presenter's internal errors, auth's
// warnings), so that they can be matched with the request's line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if info := graph.RequestInfoFrom(ctx); info != nil {
		r.AddAttrs(slog.String("request_id", info.ID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// requestIDHeader names the request id in requests (from a proxy or the
// client) and in responses.
const requestIDHeader = "X-Request-ID"

// requestID returns the request id sent in h when it is sane (1 to 128
// characters of [A-Za-z0-9._-]: nothing a log reader could mistake for
// something else), or a new random one.
func requestID(h http.Header) string {
	if id := h.Get(requestIDHeader); id != "" && len(id) <= 128 {
		sane := true
		for _, c := range []byte(id) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				sane = false
				break
			}
		}
		if sane {
			return id
		}
	}
	return rand.Text()
}

// probes are the paths load balancers and Prometheus poll every few
// seconds: their lines are logged at debug level only, so as not to drown
// the requests of users.
var probes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe wraps the whole HTTP surface: it gives each request an id (echoed
// in X-Request-ID), logs one line per request when it is answered, and
// records the GraphQL requests' metrics (m may be nil).
//
// The line holds the request's method, path, status, size, duration, the
// operation (root fields) and its name, the user id and the outcome: never a
// header, the query string, the body or the variables, which carry
// passwords and tokens.
func observe(log *slog.Logger, m *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &graph.RequestInfo{ID: requestID(r.Header)}
		w.Header().Set(requestIDHeader, info.ID)
		rec := &recorder{ResponseWriter: w, info: info}
		ctx := graph.WithRequestInfo(r.Context(), info)
		next.ServeHTTP(rec, r.WithContext(ctx))
		d := time.Since(start)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if info.Operation == "" && r.Method == http.MethodPost && r.URL.Path == "/query" {
			// Refused before reaching the GraphQL handler (limitBody).
			info.Operation = graph.OperationInvalid
			info.Outcome = "error"
			if rec.status == http.StatusRequestEntityTooLarge {
				info.Outcome = "PAYLOAD_TOO_LARGE"
			}
		}
		// The client left before its answer was written (the server
		// cancels the request's context when it sees the connection
		// close), or the answer could not be written to it: it got
		// nothing, whatever the handler meant to send. Logged and counted
		// as such, with nginx's 499, rather than as the status it never
		// saw.
		if r.Context().Err() != nil || rec.failed {
			rec.status = StatusClientClosed
			info.Outcome = OutcomeClientClosed
		}

		if m != nil && info.Operation != "" {
			m.request(info.Operation, info.Outcome, d)
		}

		level := slog.LevelInfo
		switch {
		case probes[r.URL.Path]:
			// Even a 503 from /readyz: readiness logs why itself, at
			// most once a second.
			level = slog.LevelDebug
		case rec.status >= 500 || info.Outcome == models.Internal:
			level = slog.LevelError
		}
		if !log.Enabled(ctx, level) {
			return
		}
		logRequest(ctx, log, level, r, rec, info, d)
	})
}

// logRequest writes a request's line (see observe).
func logRequest(ctx context.Context, log *slog.Logger, level slog.Level, r *http.Request, rec *recorder, info *graph.RequestInfo, d time.Duration) {
	outcome := info.Outcome
	if outcome == "" {
		outcome = "ok"
		if rec.status >= 400 {
			outcome = "error"
		}
	}
	path := r.URL.Path
	path = path[:min(len(path), 256)]
	// The record goes straight to the handler, without the caller's
	// program counter that Logger.LogAttrs takes on every line (a
	// stack walk) for a source location the server's handlers never
	// print.
	attrs := [...]slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("operation", info.Operation),
		slog.String("operation_name", info.Name),
		slog.String("user_id", info.UserID),
		slog.String("outcome", outcome),
		{}, // request_id
	}
	line := slog.NewRecord(time.Now(), level, "request", 0)
	h := log.Handler()
	if rh, ok := h.(requestIDHandler); ok {
		// The request id, last, as requestIDHandler would add it from
		// ctx: known here without looking it up.
		attrs[len(attrs)-1] = slog.String("request_id", info.ID)
		line.AddAttrs(attrs[:]...)
		h = rh.Handler
	} else {
		line.AddAttrs(attrs[:len(attrs)-1]...)
	}
	h.Handle(ctx, line)
}

// StatusClientClosed and OutcomeClientClosed are the status and outcome
// logged for a request whose client did not get the answer.
const (
	StatusClientClosed  = 499
	OutcomeClientClosed = "CLIENT_CLOSED"
)

// recorder is a ResponseWriter that notes the status and size of the
// answer, and whether writing it failed, and adds the headers that depend
// on the GraphQL response before the status is written (see header).
type recorder struct {
	http.ResponseWriter
	info   *graph.RequestInfo
	status int
	bytes  int64
	failed bool
}

// header adds Retry-After to an answer whose errors say when to try again
// (RATE_LIMITED, SERVICE_UNAVAILABLE with retryAfter): the GraphQL handler
// fills info before gqlgen writes the response through rec, so it is known
// here, at the last moment headers can still be set.
func (rec *recorder) header() {
	if rec.status == 0 && rec.info != nil && rec.info.RetryAfter > 0 {
		rec.Header().Set("Retry-After", strconv.Itoa(rec.info.RetryAfter))
	}
}

func (rec *recorder) WriteHeader(code int) {
	rec.header()
	if rec.status == 0 && code >= 200 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.header()
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	if err != nil {
		rec.failed = true
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }
