package main

import (
	"strings"
	"testing"
	"time"
)

func TestEventsConfig(t *testing.T) {
	load := func(env map[string]string) (config, error) {
		return loadConfig(func(k string) string { return env[k] })
	}
	c, err := load(nil)
	if err != nil || c.EventsRetention != time.Hour || c.EventsMaxStreams != 10 {
		t.Errorf("defaults: retention %s, streams %d, %v; want 1h and 10", c.EventsRetention, c.EventsMaxStreams, err)
	}
	c, err = load(map[string]string{"AUTH_EVENTS_RETENTION": "2h", "AUTH_ACCESS_TTL": "2h", "AUTH_EVENTS_MAX_STREAMS": "3"})
	if err != nil || c.EventsRetention != 2*time.Hour || c.EventsMaxStreams != 3 {
		t.Errorf("set: retention %s, streams %d, %v", c.EventsRetention, c.EventsMaxStreams, err)
	}
	// Shorter than the access TTL, set either way: refused naming both.
	for _, env := range []map[string]string{
		{"AUTH_EVENTS_RETENTION": "10m"},
		{"AUTH_ACCESS_TTL": "2h"},
	} {
		_, err := load(env)
		if err == nil || !strings.Contains(err.Error(), "AUTH_EVENTS_RETENTION") || !strings.Contains(err.Error(), "AUTH_ACCESS_TTL") {
			t.Errorf("%v: %v, want an error naming AUTH_EVENTS_RETENTION and AUTH_ACCESS_TTL", env, err)
		}
	}
	for _, v := range []string{"0", "1001", "ten"} {
		if _, err := load(map[string]string{"AUTH_EVENTS_MAX_STREAMS": v}); err == nil || !strings.Contains(err.Error(), "AUTH_EVENTS_MAX_STREAMS") {
			t.Errorf("AUTH_EVENTS_MAX_STREAMS=%q: %v, want an error naming it", v, err)
		}
	}
}
