package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

const userUsage = `Usage:
  authql user add --email EMAIL --password-stdin [--role ROLE]...
  authql user roles --email EMAIL --set ROLE[,ROLE...]
  authql user reset --email EMAIL
  authql user disable --email EMAIL [--reason TEXT]
  authql user enable --email EMAIL
  authql user delete --email EMAIL [--yes]
  authql user mfa reset --email EMAIL

add creates a user and prints its id. The password is the first line of
standard input, never an argument or variable (those end up in shell
history and process listings):

  printf '%s\n' "$PASSWORD" | authql user add --email ops@example.com --password-stdin --role admin,user

  --email EMAIL      the user's email
  --password-stdin   read the password from standard input (required)
  --role ROLE        a role to give; repeat it or separate roles with commas
                     (default user)

roles replaces a user's roles and prints them; the last admin cannot lose
the admin role.

  --email EMAIL      the user's email
  --set ROLES        the new roles, comma-separated (an empty value takes
                     every role away)

reset mails the user a password-reset link and code, as the API's
sendPasswordReset does, and prints the request's id and expiry. The mail
is queued in the database's outbox: a running authql server delivers it.

disable ends every session of the user and refuses their sign-ins
(ACCOUNT_DISABLED) until enable; --reason is a note for admins. enable
lets the user sign in again (the sessions that ended stay ended).

delete deletes the user with their sessions, pending requests and queued
mails; the audit log keeps their id. It asks to type the email to confirm,
unless --yes. The last enabled admin can be neither disabled nor deleted.

mfa reset removes every second factor of the user (authenticator apps,
passkeys, recovery codes), ends all their sessions and mails them a
notice, as the API's resetUserMfa does: for a user who lost their
factors, once you have made sure who they are. They sign in with their
password alone and can set up a second factor again.

On PostgreSQL, running servers apply roles, disable and delete at the
user's next request. On SQLite a running server has no way to hear of
them: it refuses the user's sign-ins and refreshes at once, but keeps
the roles it has cached for the user, and honours their access tokens
until the tokens expire (AUTH_ACCESS_TTL) or its next purge (every 10
minutes) re-reads the revocations; there, prefer the API while it runs.

Each checks its input as the API does; add hashes the password with
AUTH_ARGON2_*.
`

// userCommand runs "authql user ...".
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		io.WriteString(stdout, userUsage)
		return nil
	}
	switch args[0] {
	case "add":
		return userAdd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "roles":
		return userRoles(ctx, args[1:], getenv, stdout, stderr)
	case "reset":
		return userReset(ctx, args[1:], getenv, stdout, stderr)
	case "disable", "enable":
		return userDisable(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "delete":
		return userDelete(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "mfa":
		if len(args) < 2 || args[1] != "reset" {
			return errors.New("user mfa: the only command is reset: authql user mfa reset --email EMAIL (see authql user --help)")
		}
		return userMfaReset(ctx, args[2:], getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown user command %q (see authql user --help)", args[0])
}

// roleList is a flag of role names, repeatable and comma-separated.
type roleList struct {
	names []string
	set   bool
}

func (l *roleList) String() string { return strings.Join(l.names, ",") }

func (l *roleList) Set(v string) error {
	l.set = true
	for _, r := range strings.Split(v, ",") {
		if r = strings.TrimSpace(r); r != "" {
			l.names = append(l.names, r)
		}
	}
	return nil
}

func userAdd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	email := fs.String("email", "", "")
	fromStdin := fs.Bool("password-stdin", false, "")
	var roles roleList
	fs.Var(&roles, "role", "")
	if done, err := parseFlags(fs, args, userUsage, stdout); done || err != nil {
		return err
	}
	if *email == "" {
		return errors.New("user add: --email is required (see authql user --help)")
	}
	if !*fromStdin {
		return errors.New("user add: --password-stdin is required: the password is read from standard input only (see authql user --help)")
	}
	if !roles.set {
		roles.names = []string{models.RoleUser}
	}
	password, err := readPassword(stdin)
	if err != nil {
		return fmt.Errorf("user add: %w", err)
	}
	svc, _, closeDB, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := svc.AddUser(ctx, *email, password, roles.names)
	if err != nil {
		return commandError("user add", err)
	}
	fmt.Fprintln(stdout, u.ID)
	return nil
}

func userRoles(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user roles", flag.ContinueOnError)
	email := fs.String("email", "", "")
	var roles roleList
	fs.Var(&roles, "set", "")
	if done, err := parseFlags(fs, args, userUsage, stdout); done || err != nil {
		return err
	}
	if *email == "" {
		return errors.New("user roles: --email is required (see authql user --help)")
	}
	if !roles.set {
		return errors.New("user roles: --set is required, such as --set admin,user (see authql user --help)")
	}
	svc, db, closeDB, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := lookupUser(ctx, db, "user roles", *email)
	if err != nil {
		return err
	}
	// Through the service: it keeps the last admin, and publishes the
	// change to running servers (on PostgreSQL), which drop their copy of
	// the user.
	if u, err = svc.SetUserRoles(ctx, u.ID, roles.names); err != nil {
		return commandError("user roles", err)
	}
	fmt.Fprintln(stdout, strings.Join(u.RoleNames(), ","))
	return nil
}

// readPassword returns the first line of r without its line ending.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no standard input to read the password from")
	}
	// A bound well above any valid password, which validation refuses
	// with its own message.
	line, err := bufio.NewReader(io.LimitReader(r, 4*auth.MaxPasswordBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New(`empty password on standard input: pipe it in, such as printf '%s\n' "$PASSWORD" | authql user add --password-stdin --email E`)
	}
	return line, nil
}

// userFlags parses the flags of "authql user <name>": --email, required,
// and those define adds.
func userFlags(name string, args []string, stdout io.Writer, define func(*flag.FlagSet)) (email string, done bool, err error) {
	fs := flag.NewFlagSet("user "+name, flag.ContinueOnError)
	e := fs.String("email", "", "")
	if define != nil {
		define(fs)
	}
	if done, err := parseFlags(fs, args, userUsage, stdout); done || err != nil {
		return "", done, err
	}
	if *e == "" {
		return "", false, fmt.Errorf("user %s: --email is required (see authql user --help)", name)
	}
	return *e, false, nil
}

// lookupUser returns the user with the email (normalized as the API
// does), or an error for cmd saying that no user has it.
func lookupUser(ctx context.Context, db *gorm.DB, cmd, email string) (*models.User, error) {
	key, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, commandError(cmd, err)
	}
	u, err := models.UserByEmail(ctx, db, key)
	if models.ErrorCode(err) == models.NotFound {
		return nil, fmt.Errorf("%s: no user has the email %q", cmd, email)
	} else if err != nil {
		return nil, commandError(cmd, err)
	}
	return u, nil
}

// onUser runs a user subcommand that acts on one account: it reads the
// flags (--email and those define adds), opens the service and looks the
// account up, then calls do. Flags asking for help end it early.
func onUser(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer,
	define func(*flag.FlagSet), do func(svc *auth.Service, u *models.User) error) error {
	email, done, err := userFlags(name, args, stdout, define)
	if done || err != nil {
		return err
	}
	svc, db, closeDB, err := openService(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := lookupUser(ctx, db, "user "+name, email)
	if err != nil {
		return err
	}
	return do(svc, u)
}

// userReset runs "authql user reset": the reset mail of the API's
// sendPasswordReset, queued in the outbox for a running server to deliver.
func userReset(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return onUser(ctx, "reset", args, getenv, stdout, stderr, nil, func(svc *auth.Service, u *models.User) error {
		req, err := svc.SendPasswordReset(ctx, u.ID)
		if err != nil {
			return commandError("user reset", err)
		}
		fmt.Fprintf(stdout, "request %s expires at %s\n", req.ID, req.ExpiresAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(stderr, "the reset mail to %s is queued: a running authql server on this database delivers it\n", u.Email)
		return nil
	})
}

// userDisable runs "authql user disable" and "authql user enable".
func userDisable(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var reason *string
	define := func(fs *flag.FlagSet) {
		if name == "disable" {
			fs.Func("reason", "", func(v string) error { reason = &v; return nil })
		}
	}
	return onUser(ctx, name, args, getenv, stdout, stderr, define, func(svc *auth.Service, u *models.User) error {
		// Through the service: it keeps the last admin, ends the sessions,
		// and publishes the change to running servers (on PostgreSQL).
		var err error
		if name == "disable" {
			_, err = svc.DisableUser(ctx, u.ID, reason)
		} else {
			_, err = svc.EnableUser(ctx, u.ID)
		}
		if err != nil {
			return commandError("user "+name, err)
		}
		fmt.Fprintf(stdout, "%sd %s\n", name, u.ID)
		return nil
	})
}

// userMfaReset runs "authql user mfa reset". No confirmation asked, as for
// disable: it takes nothing the user cannot set up again, and an operator
// runs it for a user locked out, who is waiting.
func userMfaReset(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return onUser(ctx, "mfa reset", args, getenv, stdout, stderr, nil, func(svc *auth.Service, u *models.User) error {
		// Through the service: it ends the sessions on every replica, mails
		// the notice and audits the reset.
		if _, err := svc.ResetUserMfa(ctx, nil, u.ID); err != nil {
			return commandError("user mfa reset", err)
		}
		fmt.Fprintf(stdout, "reset the second factors of %s\n", u.ID)
		fmt.Fprintf(stderr, "every session of %s ended; the notice is queued: a running authql server on this database delivers it\n", u.Email)
		return nil
	})
}

// userDelete runs "authql user delete".
func userDelete(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var yes bool
	define := func(fs *flag.FlagSet) { fs.BoolVar(&yes, "yes", false, "") }
	return onUser(ctx, "delete", args, getenv, stdout, stderr, define, func(svc *auth.Service, u *models.User) error {
		if !yes {
			if err := confirmDelete(u, stdin, stderr); err != nil {
				return err
			}
		}
		if err := svc.DeleteUser(ctx, u.ID); err != nil {
			return commandError("user delete", err)
		}
		fmt.Fprintf(stdout, "deleted %s\n", u.ID)
		return nil
	})
}

// confirmDelete asks the operator to type the user's email, so that a
// deletion, which cannot be undone, is never the result of a mistyped or
// recalled command line alone.
func confirmDelete(u *models.User, stdin io.Reader, stderr io.Writer) error {
	fmt.Fprintf(stderr, "This deletes the account %s (%s), its sessions, pending requests and queued mails; it cannot be undone.\nType the email to confirm: ", u.Email, u.ID)
	if stdin == nil {
		return errors.New("user delete: not confirmed: no standard input (pass --yes to delete without asking)")
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("user delete: read the confirmation: %w", err)
	}
	typed, nerr := models.NormalizeEmail(strings.TrimSpace(line))
	if nerr != nil || typed != u.Email {
		return errors.New("user delete: not confirmed: the email typed is not the account's (pass --yes to delete without asking)")
	}
	return nil
}
