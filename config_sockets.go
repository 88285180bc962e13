package main

import (
	"time"

	"github.com/authql/authql/graph"
)

// socketConfig is the websockets' configuration (subscriptions on /query).
type socketConfig struct {
	WSMaxSocketsPerUser int
	WSMaxSubscriptions  int
	WSMaxMessageBytes   int
	WSPingInterval      time.Duration
}

// defaultSocketConfig is graph.DefaultSocketOptions.
func defaultSocketConfig() socketConfig {
	d := graph.DefaultSocketOptions
	return socketConfig{
		WSMaxSocketsPerUser: d.MaxPerUser,
		WSMaxSubscriptions:  d.MaxSubscriptions,
		WSMaxMessageBytes:   int(d.MaxMessageBytes),
		WSPingInterval:      d.PingInterval,
	}
}

// readSockets reads the websockets' limits.
func readSockets(r *envReader, c *config) {
	r.integer("AUTH_WS_MAX_SOCKETS_PER_USER", &c.WSMaxSocketsPerUser, 1, 10_000)
	r.integer("AUTH_WS_MAX_SUBSCRIPTIONS", &c.WSMaxSubscriptions, 1, 1000)
	r.integer("AUTH_WS_MAX_MESSAGE_BYTES", &c.WSMaxMessageBytes, 1024, 16<<20)
	r.duration("AUTH_WS_PING_INTERVAL", &c.WSPingInterval, time.Second)
	// Proxies and load balancers close connections idle for a minute by
	// default (nginx's proxy_read_timeout 60s, AWS ALB's 60 s): a ping
	// must cross the socket well within that.
	r.atMost("AUTH_WS_PING_INTERVAL", c.WSPingInterval, 10*time.Minute, "proxies close idle connections after about a minute; keep it under that")
}
