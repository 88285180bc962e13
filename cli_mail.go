package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	netmail "net/mail"
	"time"

	"github.com/authql/authql/auth/mail"
)

// mailUsage is the help of authql mail --help.
const mailUsage = `Usage: authql mail test --to ADDRESS

Sends one test mail to ADDRESS at once, through the transport the server
would use (AUTH_SMTP_URL, or outside production without it the .eml files
of AUTH_MAIL_DIR), and prints where it went. It does not go through the
outbox: on failure the command exits 1 with the SMTP server's answer, so
that a configuration can be checked before any user needs a mail. The
database is not opened.
`

// mailTestTimeout bounds authql mail test: connecting, TLS and each SMTP
// step have timeouts of their own within it (see mail.SMTP).
const mailTestTimeout = 3 * time.Minute

// mailCommand runs "authql mail ...".
func mailCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, mailUsage)
		return nil
	}
	if args[0] != "test" {
		return fmt.Errorf("unknown mail command %q (see authql mail --help)", args[0])
	}
	fs := flag.NewFlagSet("mail test", flag.ContinueOnError)
	to := fs.String("to", "", "")
	if done, err := parseFlags(fs, args[1:], mailUsage, stdout); done || err != nil {
		return err
	}
	addr, err := netmail.ParseAddress(*to)
	if *to == "" || err != nil {
		return fmt.Errorf("mail test: --to %q is not an email address (see authql mail --help)", *to)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := cfg.Mail.required(); err != nil {
		return err
	}
	// Not sealed: the message goes straight to the transport.
	c, err := composer(cfg.Mail, nil, appURL(cfg.Mail, cfg.Port))
	if err != nil {
		return err
	}
	t, err := mailTransport(cfg)
	if err != nil {
		return err
	}
	m, err := c.Compose(mail.KindTest, addr.Address, mail.Vars{})
	if err != nil {
		return err
	}
	from, _ := netmail.ParseAddress(cfg.Mail.From) // checked by loadConfig
	ctx, cancel := context.WithTimeout(ctx, mailTestTimeout)
	defer cancel()
	if err := t.Send(ctx, mail.Message{ID: m.ID, From: from.Address, To: addr.Address, Data: []byte(m.Message)}); err != nil {
		return fmt.Errorf("mail test: %s: %w", t, err)
	}
	if d, ok := t.(*mail.Dir); ok {
		fmt.Fprintf(stdout, "test mail to %s written to %s\n", addr.Address, d.Path(m.ID))
		return nil
	}
	fmt.Fprintf(stdout, "test mail to %s accepted by %s\n", addr.Address, t)
	return nil
}
