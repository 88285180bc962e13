package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWALWarningsCoalesce: a checkpoint that keeps failing (four tries a
// second) is logged once, then once a minute with the count since.
func TestWALWarningsCoalesce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	failed := walWarnings(context.Background(), log, func() time.Time { return now })
	for range 240 { // a minute of failures, one every 250 ms
		failed(errors.New("disk full"))
		now = now.Add(250 * time.Millisecond)
	}
	failed(errors.New("disk full"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines for 241 failures over a minute, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "failures=1") || !strings.Contains(lines[1], "failures=240") {
		t.Errorf("lines do not count the failures:\n%s", buf.String())
	}
}
