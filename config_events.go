package main

import "time"

// readEvents reads the revocation feed's variables: how long its events
// are kept, and how many streams a user may hold open. It needs
// c.AccessTTL (readTokens).
func readEvents(r *envReader, c *config) {
	r.duration("AUTH_EVENTS_RETENTION", &c.EventsRetention, time.Minute)
	// A service reconnecting with a fresh token resumes from its
	// Last-Event-ID: the events it missed must still be there for as long
	// as the token it held could have been used without them.
	if c.EventsRetention < c.AccessTTL {
		r.bad("AUTH_EVENTS_RETENTION", "%s is shorter than AUTH_ACCESS_TTL (%s): a revocation-feed client could miss events its tokens outlive; set AUTH_EVENTS_RETENTION to at least AUTH_ACCESS_TTL, or lower AUTH_ACCESS_TTL",
			c.EventsRetention, c.AccessTTL)
	}
	r.integer("AUTH_EVENTS_MAX_STREAMS", &c.EventsMaxStreams, 1, 1000)
}
