package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authql/authql/models"
)

// repoRoot returns the directory of the go.mod of the working directory:
// the tool builds the server from there.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run authql-bench from the authql repository (go run ./cmd/authql-bench)")
	}
	return filepath.Dir(mod), nil
}

// buildServer builds the authql command of the repository at root into dir.
func buildServer(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "authql")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// server is an authql process the tool started.
type server struct {
	cmd     *exec.Cmd
	url     string // of POST /query
	logPath string
	exited  chan struct{}
}

// freePort returns a TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs bin with env (added to the tool's own environment),
// under taskset on cpus when cpus is not empty, and waits until it answers
// GET /healthz. Its output goes to logPath.
func startServer(ctx context.Context, bin string, env []string, cpus, logPath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	name, args := bin, []string{}
	if cpus != "" {
		// taskset execs the server in its own process, so the pid is the
		// server's (for /proc/<pid>/status).
		name, args = "taskset", []string{"-c", cpus, bin}
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(append(os.Environ(), env...), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d/query", port), logPath: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()

	health := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("the server exited at start: %s\n%s", cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server did not answer %s within a minute\n%s", health, s.logTail())
		}
	}
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks the server to shut down and kills it if it has not within
// 15 s.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// logTail is the end of the server's output, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// resetPeakRSS resets the kernel's record of pid's peak resident memory
// (VmHWM), so that the next reading is the peak of what ran in between.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// peakRSS returns pid's peak resident memory (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) { return procMemory(pid, "VmHWM") }

// currentRSS returns pid's resident memory (VmRSS) in bytes.
func currentRSS(pid int) (int64, error) { return procMemory(pid, "VmRSS") }

// procMemory reads a memory field (in kB) of /proc/<pid>/status in bytes.
func procMemory(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// createPostgres creates a fresh database on the server of adminURL and
// returns its URL, the server's version, and a function that drops it.
func createPostgres(ctx context.Context, adminURL string) (dsn, version string, drop func() error, err error) {
	admin, _, err := models.Open(adminURL, models.Options{MaxConns: 1})
	if err != nil {
		return "", "", nil, fmt.Errorf("-pg: %v", err)
	}
	sqlAdmin, _ := admin.DB()
	defer sqlAdmin.Close()
	if err := admin.WithContext(ctx).Raw("SHOW server_version").Scan(&version).Error; err != nil {
		return "", "", nil, fmt.Errorf("-pg: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "authql_bench_" + hex.EncodeToString(b)
	if err := admin.WithContext(ctx).Exec("CREATE DATABASE " + name).Error; err != nil {
		return "", "", nil, fmt.Errorf("-pg: create database: %v", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", "", nil, fmt.Errorf("-pg: %v", err)
	}
	u.Path = "/" + name
	drop = func() error {
		db, _, err := models.Open(adminURL, models.Options{MaxConns: 1})
		if err != nil {
			return err
		}
		sqlDB, _ := db.DB()
		defer sqlDB.Close()
		return db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error
	}
	return u.String(), version, drop, nil
}

// cpuList reads the CPUs this process may run on ("0-1,4") from
// /proc/self/status and returns them.
func cpuList() ([]int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil, errors.New("no Cpus_allowed_list in /proc/self/status")
}

// parseCPUList parses a kernel CPU list such as "0-3,6,8-9".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %v", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// formatCPUList writes cpus as a comma-separated list for taskset -c.
func formatCPUList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// pinPostgres moves every running PostgreSQL process (the postmaster, its
// helpers and the open backends; new backends inherit the postmaster's
// affinity) onto cpus, and returns a function that moves them all back to
// where the postmaster was allowed to run before.
func pinPostgres(cpus string) (restore func() error, err error) {
	pids, err := postgresPids()
	if err != nil {
		return nil, err
	}
	orig, err := procCPUs(pids[0])
	if err != nil {
		return nil, err
	}
	set := func(list string) error {
		pids, err := postgresPids()
		if err != nil {
			return err
		}
		var errs []error
		for _, pid := range pids {
			out, err := exec.Command("taskset", "-a", "-c", "-p", list, strconv.Itoa(pid)).CombinedOutput()
			if err != nil && processExists(pid) {
				errs = append(errs, fmt.Errorf("taskset %d: %v: %s", pid, err, strings.TrimSpace(string(out))))
			}
		}
		return errors.Join(errs...)
	}
	if err := set(cpus); err != nil {
		set(orig)
		return nil, err
	}
	return func() error { return set(orig) }, nil
}

// postgresPids lists the processes named postgres, the postmaster first.
func postgresPids() ([]int, error) {
	out, err := exec.Command("pgrep", "-x", "postgres").Output()
	if err != nil {
		return nil, fmt.Errorf("pgrep -x postgres: no PostgreSQL process found on this machine (%v)", err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, errors.New("pgrep -x postgres: no PostgreSQL process found")
	}
	ppid := func(pid int) int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// The fields after the command name, which is in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		return 0
	}
	// The postmaster is the one whose parent is not a postgres process.
	isPG := map[int]bool{}
	for _, p := range pids {
		isPG[p] = true
	}
	for i, p := range pids {
		if !isPG[ppid(p)] {
			pids[0], pids[i] = pids[i], pids[0]
			break
		}
	}
	return pids, nil
}

// procCPUs is the CPU list pid may run on.
func procCPUs(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Cpus_allowed_list for pid %d", pid)
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
