package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestShutdownWritesQueuedAuditEvents: events still queued when the
// server stops are written before its database closes.
func TestShutdownWritesQueuedAuditEvents(t *testing.T) {
	dsn := testdb.SQLite(t)
	url, stop := startRun(t, map[string]string{"DATABASE_URL": dsn})
	const n = 20
	for i := range n {
		postGraphQL(t, url, nil, `mutation($e: String!) { register(email: $e, password: "password1") { accessToken } }`,
			map[string]any{"e": fmt.Sprintf("u%d@example.com", i)}).OK(t)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	db := testdb.OpenAsIs(t, dsn)
	var got int64
	if err := db.Model(&models.AuditEvent{}).Where("type = ?", models.AuditRegister).Count(&got).Error; err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("%d REGISTER events after shutdown, want %d", got, n)
	}
}

func TestAuditRetentionConfig(t *testing.T) {
	load := func(v string) (config, error) {
		return loadConfig(func(k string) string {
			if k == "AUTH_AUDIT_RETENTION" {
				return v
			}
			return ""
		})
	}
	if c, err := load(""); err != nil || c.AuditRetention != 2160*time.Hour {
		t.Errorf("default: %s, %v; want 2160h", c.AuditRetention, err)
	}
	if c, err := load("720h"); err != nil || c.AuditRetention != 720*time.Hour {
		t.Errorf("720h: %s, %v", c.AuditRetention, err)
	}
	for _, v := range []string{"30m", "0", "off", "90 days", "-1h"} {
		if _, err := load(v); err == nil || !strings.Contains(err.Error(), "AUTH_AUDIT_RETENTION") {
			t.Errorf("%q: %v, want an error naming AUTH_AUDIT_RETENTION", v, err)
		}
	}
	if !strings.Contains(configHelp, "AUTH_AUDIT_RETENTION") {
		t.Error("configHelp does not list AUTH_AUDIT_RETENTION")
	}
}
