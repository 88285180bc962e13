// Package pgcluster gives fault tests a PostgreSQL server of their own: a
// throwaway cluster under a temporary directory, made with the machine's
// initdb and run with pg_ctl on a free port, that a test may stop, start,
// kill and freeze while authql runs against it. It never touches any other
// PostgreSQL on the machine (the shared one on 5432 included): it only ever
// signals the postmaster whose pid file lies in its own data directory.
//
// initdb refuses to run as root, so as root the harness runs initdb, pg_ctl
// and the server as an unprivileged user (User), created with useradd when
// missing, and the cluster's directory belongs to that user.
//
// Without initdb the test is skipped with the reason logged, except in CI
// (CI=true), where it fails: CI must never pass by skipping the fault tests.
package pgcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for Ready's probe
)

// User is the unprivileged account the cluster runs as when the tests run
// as root.
const User = "authqltest"

// Cluster is one running (or stopped, or frozen) PostgreSQL server.
type Cluster struct {
	tb   testing.TB
	bin  string // directory holding initdb and pg_ctl
	dir  string // the cluster's own directory: data/, log, sockets
	port int
	cred *syscall.Credential // nil: run as ourselves

	mu     sync.Mutex
	frozen []int // pids stopped by Freeze, postmaster first
}

// Start makes a new cluster, starts it, and registers a cleanup that stops
// it (thawing it first if frozen) and removes its directory.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	bin, err := findBin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("pgcluster: %v; CI must run the fault tests (install Debian's postgresql package)", err)
		}
		tb.Skipf("pgcluster: %v", err)
	}
	c := &Cluster{tb: tb, bin: bin}
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := ensureUser()
		if err != nil {
			tb.Fatalf("pgcluster: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not tb.TempDir: its parents are private to root, and the server's
	// user must reach its own directory. /tmp itself is world-traversable.
	c.dir, err = os.MkdirTemp("", "authql-pgcluster-")
	if err != nil {
		tb.Fatalf("pgcluster: %v", err)
	}
	if uid >= 0 {
		if err := os.Chown(c.dir, uid, gid); err != nil {
			os.RemoveAll(c.dir)
			tb.Fatalf("pgcluster: chown %s: %v", c.dir, err)
		}
	}
	tb.Cleanup(c.cleanup)

	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust",
		"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"); err != nil {
		tb.Fatalf("pgcluster: initdb: %v\n%s", err, out)
	}
	c.port, err = freePort()
	if err != nil {
		tb.Fatalf("pgcluster: %v", err)
	}
	// Settings in the data directory, so Start after Stop or Kill comes
	// back on the same port. Only TCP on 127.0.0.1, and the Unix socket in
	// the cluster's own directory, never /var/run/postgresql.
	// fsync off: a Kill is a crash of the server, not of the machine, so
	// commits still survive it (synchronous_commit stays on).
	conf := fmt.Sprintf("\n# pgcluster\nport = %d\nlisten_addresses = '127.0.0.1'\n"+
		"unix_socket_directories = '%s'\nfsync = off\n"+
		"full_page_writes = off\nmax_connections = 60\nshared_buffers = 16MB\n",
		c.port, c.dir)
	if err := appendFile(filepath.Join(c.data(), "postgresql.conf"), conf); err != nil {
		tb.Fatalf("pgcluster: %v", err)
	}
	c.Start()
	return c
}

// DSN is the URL of the cluster's postgres database (superuser, trust auth).
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port is the TCP port the cluster listens on (the same across restarts).
func (c *Cluster) Port() int { return c.port }

// Start starts the cluster (again) on the same port with the same data, and
// waits until it accepts connections.
func (c *Cluster) Start() {
	c.tb.Helper()
	if out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.data(),
		"-l", filepath.Join(c.dir, "server.log")); err != nil {
		c.tb.Fatalf("pgcluster: pg_ctl start: %v\n%s\n%s", err, out, c.serverLog())
	}
}

// Stop shuts the cluster down quickly (pg_ctl -m fast: open sessions are
// ended with an admin-shutdown error, SQLSTATE 57P01).
func (c *Cluster) Stop() {
	c.tb.Helper()
	c.Thaw()
	if out, err := c.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", c.data()); err != nil {
		c.tb.Fatalf("pgcluster: pg_ctl stop: %v\n%s", err, out)
	}
}

// Kill stops the cluster as a crash would (pg_ctl -m immediate: no
// shutdown checkpoint; the next Start runs crash recovery).
func (c *Cluster) Kill() {
	c.tb.Helper()
	c.Thaw()
	if out, err := c.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", c.data()); err != nil {
		c.tb.Fatalf("pgcluster: pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

// Freeze stops the postmaster and every one of its child processes with
// SIGSTOP, so established connections hang as well as new ones: a stall,
// not a refusal. Thaw resumes them.
func (c *Cluster) Freeze() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen != nil {
		return
	}
	pm, err := c.postmasterPID()
	if err != nil {
		c.tb.Fatalf("pgcluster: freeze: %v", err)
	}
	// The postmaster first, so it forks no new child after the list of
	// children is read.
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		c.tb.Fatalf("pgcluster: freeze: SIGSTOP postmaster %d: %v", pm, err)
	}
	c.frozen = []int{pm}
	for _, pid := range children(pm) {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			c.frozen = append(c.frozen, pid)
		}
	}
}

// Thaw resumes what Freeze stopped (children first, then the postmaster).
// It does nothing when the cluster is not frozen.
func (c *Cluster) Thaw() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.frozen) - 1; i >= 0; i-- {
		syscall.Kill(c.frozen[i], syscall.SIGCONT)
	}
	c.frozen = nil
}

// Ready reports whether the cluster answers a query now (within 2 s).
func (c *Cluster) Ready() bool {
	db, err := sql.Open("pgx", c.DSN())
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx) == nil
}

func (c *Cluster) cleanup() {
	c.Thaw()
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		if out, err := c.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", c.data()); err != nil {
			c.tb.Errorf("pgcluster: stopping the cluster in %s: %v\n%s", c.dir, err, out)
		}
	}
	if c.tb.Failed() {
		c.tb.Logf("pgcluster: server log:\n%s", c.serverLog())
	}
	os.RemoveAll(c.dir)
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// run runs one of the cluster's programs as the cluster's user, with its
// output in a file rather than a pipe: pg_ctl start leaves the server
// running, and a server holding the pipe would keep Output from returning.
func (c *Cluster) run(prog string, args ...string) (string, error) {
	out, err := os.CreateTemp("", "authql-pgcluster-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	// Its own process group: a Ctrl-C meant for go test does not reach the
	// server half-way through a fault.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return string(b), err
}

func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("cluster not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad postmaster.pid %q", first)
	}
	return pid, nil
}

// children lists the pids whose parent is pid, from /proc.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so read after
		// the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// findBin finds the directory of initdb and pg_ctl: PATH first, then
// Debian's /usr/lib/postgresql/<version>/bin, newest version first.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no initdb and pg_ctl in PATH or /usr/lib/postgresql/*/bin")
}

func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

var userOnce sync.Mutex

// ensureUser returns the unprivileged account, creating it (no home, no
// login shell) when missing.
func ensureUser() (*user.User, error) {
	userOnce.Lock()
	defer userOnce.Unlock()
	if u, err := user.Lookup(User); err == nil {
		return u, nil
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		useradd = "/usr/sbin/useradd" // not in a root PATH without sbin
	}
	out, err := exec.Command(useradd, "--system", "--no-create-home",
		"--shell", "/usr/sbin/nologin", User).CombinedOutput()
	if err != nil {
		// Another test binary may have created it meanwhile.
		if u, lerr := user.Lookup(User); lerr == nil {
			return u, nil
		}
		return nil, fmt.Errorf("useradd %s: %v: %s", User, err, out)
	}
	return user.Lookup(User)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(name, s string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
