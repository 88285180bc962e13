package mail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Dir "delivers" each mail as a file <time>-<id>.eml in a directory: the
// transport of development without AUTH_SMTP_URL, so that `go run .`
// users open the mail (any mail client reads .eml) and follow its link.
type Dir struct {
	dir string
	now func() time.Time
}

// NewDir returns the transport writing to dir, which its first mail
// creates (private: the files hold live links).
func NewDir(dir string, now func() time.Time) (*Dir, error) {
	if now == nil {
		now = time.Now
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("AUTH_MAIL_DIR: %w", err)
	}
	return &Dir{dir: abs, now: now}, nil
}

// String is the directory.
func (d *Dir) String() string { return d.dir }

// Send writes m to a temporary file and renames it into place, so that a
// reader watching the directory never opens half a mail. The file is
// 0600: it holds a link that works until it expires.
func (d *Dir) Send(_ context.Context, m Message) error {
	name := d.now().UTC().Format("20060102T150405.000000000Z") + "-" + m.ID + ".eml"
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.dir, ".tmp-*.eml") // created 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(m.Data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.dir, name))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Path returns the file Send wrote for the mail with id, or "" if none.
func (d *Dir) Path(id string) string {
	matches, _ := filepath.Glob(filepath.Join(d.dir, "*-"+id+".eml"))
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

var _ Transport = (*Dir)(nil)
