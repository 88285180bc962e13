package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authql/authql/graph"
)

// Handler is authql's HTTP surface (see New) with the websockets it holds
// open, which the server's shutdown closes (CloseSockets).
type Handler struct {
	http.Handler
	sockets *graph.Sockets
}

// CloseSockets closes every open socket with 1001 (going away). Register
// it with http.Server.RegisterOnShutdown: Shutdown neither waits for nor
// closes hijacked connections.
func (h *Handler) CloseSockets() { h.sockets.CloseAll() }

// OpenSockets is the number of websockets open now.
func (h *Handler) OpenSockets() int { return h.sockets.Open() }

// ListeningSockets is the number of sessionEvents subscriptions receiving
// events now.
func (h *Handler) ListeningSockets() int { return h.sockets.Listening() }

// upgradeOnly passes on the websocket upgrades of GET /query and answers
// any other GET with 405: a query in a GET could be set off cross-site by
// a link or an image (see graph.NewHandler), and a websocket's Origin is
// checked before it is accepted.
func upgradeOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST /query, or a websocket upgrade (graphql-transport-ws)", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// socketOptions are the sockets' limits from cfg.
func socketOptions(cfg Config) graph.SocketOptions {
	return graph.SocketOptions{
		MaxPerUser:       cfg.WSMaxSocketsPerUser,
		MaxSubscriptions: cfg.WSMaxSubscriptions,
		MaxMessageBytes:  cfg.WSMaxMessageBytes,
		PingInterval:     cfg.WSPingInterval,
		InitTimeout:      cfg.WSInitTimeout,
		ClockPoll:        cfg.WSClockPoll,
	}
}

// watchSockets adds the open sockets gauge and the closes counter, and
// returns the function that counts a close.
func (m *Metrics) watchSockets(open func() int) func(code int) {
	closes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authql_websocket_closes_total",
		Help: "Websockets closed, by close code (4401 session ended, 4403 token, 4408 no connection_init, 4429 limits, 1001 shutdown, 1006 gone without a close, ...; a peer's code outside authql's and 1000-1015 as \"other\").",
	}, []string{"code"})
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authql_websockets_open",
			Help: "Websockets open now (subscriptions over graphql-transport-ws).",
		}, func() float64 { return float64(open()) }),
		closes,
	)
	return func(code int) { closes.WithLabelValues(closeLabel(code)).Inc() }
}

// closeLabel is the closes counter's label of code: the codes authql
// closes with and the standard ones (1000-1015) by number, any other as
// "other". A peer closes with the code it likes: labelled as it is, it
// would make a series of each of 4000 codes.
func closeLabel(code int) string {
	switch {
	case code >= 1000 && code <= 1015:
	case code == graph.CloseBadMessage, code == graph.CloseSessionEnded, code == graph.CloseBadToken,
		code == graph.CloseInitTimeout, code == graph.CloseTooMany:
	default:
		return "other"
	}
	return strconv.Itoa(code)
}
