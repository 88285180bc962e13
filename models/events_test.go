package models

import (
	"fmt"
	"testing"
	"time"
)

func TestEventPayloadsFitNotifications(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 999999999, time.UTC)
	var events []Event
	for i := range 1000 {
		events = append(events, Event{Kind: EventSessionRevoked, ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), Until: until})
	}
	events = append(events, Event{Kind: EventKeysChanged})
	payloads, err := eventPayloads(events)
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) < 2 {
		t.Fatalf("%d events in %d payloads; want them split", len(events), len(payloads))
	}
	var got []Event
	for i, p := range payloads {
		// PostgreSQL refuses a payload of 8000 bytes or more.
		if len(p) >= 8000 {
			t.Errorf("payload %d is %d bytes", i, len(p))
		}
		es, err := ParseEvents(p)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		got = append(got, es...)
	}
	if len(got) != len(events) {
		t.Fatalf("decoded %d events, want %d", len(got), len(events))
	}
	for i := range events {
		if got[i].Kind != events[i].Kind || got[i].ID != events[i].ID || !got[i].Until.Equal(events[i].Until) {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], events[i])
		}
	}
}

func TestEventPayloadTooLarge(t *testing.T) {
	big := make([]byte, 8000)
	for i := range big {
		big[i] = 'x'
	}
	if _, err := eventPayloads([]Event{{Kind: EventUserChanged, ID: string(big)}}); err == nil {
		t.Fatal("an event over the notification limit was accepted")
	}
}
