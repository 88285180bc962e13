package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMetricsConfig(t *testing.T) {
	dir := t.TempDir()
	t.Run("Off", func(t *testing.T) {
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dir + "/off.db", "AUTH_METRICS": "false"})
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("AUTH_METRICS=false: GET /metrics = %d, want 404", resp.StatusCode)
		}
	})
	t.Run("OwnAddress", func(t *testing.T) {
		addr := make(chan string, 1)
		out := &addrWriter{addr: addr}
		env := map[string]string{"DATABASE_URL": dir + "/own.db", "PORT": "0", "AUTH_METRICS_ADDR": "127.0.0.1:0",
			"AUTH_ARGON2_MEMORY": "64", "AUTH_ARGON2_TIME": "1"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, nil, out, io.Discard) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}()
		var url string
		select {
		case url = <-addr:
		case err := <-done:
			t.Fatalf("run: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("run did not start listening")
		}
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("with AUTH_METRICS_ADDR: GET /metrics on PORT = %d, want 404", resp.StatusCode)
		}
		out.mu.Lock()
		printed := out.buf.String()
		out.mu.Unlock()
		_, rest, ok := strings.Cut(printed, "authql metrics on ")
		if !ok {
			t.Fatalf("the metrics address is not printed: %q", printed)
		}
		metricsURL, _, _ := strings.Cut(rest, "\n")
		m := scrape(t, strings.TrimSuffix(metricsURL, "/metrics"))
		if !strings.Contains(m, "authql_revoked_sessions") {
			t.Errorf("AUTH_METRICS_ADDR serves no authql metrics")
		}
	})
}
