package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// seeded is a user seedUsers created, as the list should show it.
type seeded struct {
	ID        string
	CreatedAt time.Time
	Roles     []string
}

// seedUsers creates n users directly in the database, the i-th created at
// at(i) with the roles roles(i), and returns them in the list's order
// (createdAt, then id), computed here rather than asked of the database.
func seedUsers(tb testing.TB, db *gorm.DB, n int, at func(i int) time.Time, roles func(i int) []string) []seeded {
	tb.Helper()
	ctx := context.Background()
	out := make([]seeded, n)
	for i := range n {
		u := &models.User{ID: uuid.NewString(), Email: fmt.Sprintf("seed%d@example.com", i), PasswordHash: "x", CreatedAt: at(i)}
		if err := models.CreateUser(ctx, db, u, roles(i), nil); err != nil {
			tb.Fatal(err)
		}
		out[i] = seeded{ID: u.ID, CreatedAt: u.CreatedAt, Roles: roles(i)}
	}
	slices.SortFunc(out, func(a, b seeded) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// usersPage is one page of users as the API returns it.
type usersPage []struct {
	ID          string   `json:"id"`
	Email       string   `json:"email"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	CreatedAt   string   `json:"createdAt"`
	Cursor      string   `json:"cursor"`
}

const usersQuery = `query($first: Int, $after: String) { users(first: $first, after: $after) { id email roles permissions createdAt cursor } }`

func users(tb testing.TB, ts *authtest.Server, token string, first int, after string) usersPage {
	tb.Helper()
	vars := map[string]any{"first": first}
	if after != "" {
		vars["after"] = after
	}
	var out struct{ Users usersPage }
	if err := authtest.PostLoad(http.DefaultClient, ts.URL, token, usersQuery, vars, &out); err != nil {
		tb.Fatalf("users(first: %d, after: %q): %v", first, after, err)
	}
	return out.Users
}

// TestUsersPagination pages through more users than one page holds, most
// of them created at one instant, in pages whose edges fall inside that
// tie: every user must come exactly once, in (createdAt, id) order, with
// its roles and the permissions they grant.
func TestUsersPagination(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		// Whole microseconds, which PostgreSQL stores exactly; in 2020, so
		// that the admin created now comes last.
		base := time.Date(2020, 1, 2, 3, 4, 5, 678_901_000, time.UTC)
		at := func(i int) time.Time {
			switch {
			case i%5 == 0: // 120 users at distinct instants around the tie
				return base.Add(time.Duration(i-300) * time.Millisecond)
			default: // 480 users at one instant
				return base
			}
		}
		roles := func(i int) []string {
			if i%50 == 0 {
				return []string{models.RoleAdmin, models.RoleUser}
			}
			return []string{models.RoleUser}
		}
		want := seedUsers(t, ts.DB, 600, at, roles)
		adminUser, err := models.UserByID(context.Background(), ts.DB, admin.UserID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, seeded{ID: admin.UserID, CreatedAt: adminUser.CreatedAt, Roles: adminUser.RoleNames()})
		dbRoles, err := models.Roles(context.Background(), ts.DB)
		if err != nil {
			t.Fatal(err)
		}
		grants := map[string][]string{}
		for _, r := range dbRoles {
			grants[r.Name] = r.PermissionNames()
		}

		// 7 does not divide the tie, so page edges fall inside it.
		got, pages := allUsers(t, ts, admin.Access, 7, len(want))
		if len(got) != len(want) {
			t.Fatalf("paged %d users in %d pages, want %d", len(got), pages, len(want))
		}
		for i, u := range got {
			w := want[i]
			var wantPerms []string
			for _, r := range w.Roles {
				wantPerms = append(wantPerms, grants[r]...)
			}
			slices.Sort(wantPerms)
			wantPerms = slices.Compact(wantPerms)
			if u.ID != w.ID || !slices.Equal(u.Roles, w.Roles) || !slices.Equal(u.Permissions, wantPerms) {
				t.Fatalf("user %d = %s roles %q permissions %q, want %s roles %q permissions %q", i, u.ID, u.Roles, u.Permissions, w.ID, w.Roles, wantPerms)
			}
		}

		// The defaults and the largest page.
		r := ts.Do(t, admin.Access, `{ users { id } }`, nil).OK(t)
		if n := len(r.Get("users").([]any)); n != models.DefaultPageSize {
			t.Errorf("users without first: %d users, want %d", n, models.DefaultPageSize)
		}
		r = ts.Do(t, admin.Access, `{ users(first: null) { id } }`, nil).OK(t)
		if n := len(r.Get("users").([]any)); n != models.DefaultPageSize {
			t.Errorf("users(first: null): %d users, want %d", n, models.DefaultPageSize)
		}
		big := users(t, ts, admin.Access, models.MaxPageSize, "")
		if len(big) != models.MaxPageSize || big[0].ID != want[0].ID || big[len(big)-1].ID != want[models.MaxPageSize-1].ID {
			t.Errorf("users(first: %d): %d users from %s to %s, want %s to %s", models.MaxPageSize, len(big), big[0].ID, big[len(big)-1].ID, want[0].ID, want[models.MaxPageSize-1].ID)
		}
		rest := users(t, ts, admin.Access, models.MaxPageSize, big[len(big)-1].Cursor)
		if len(rest) != len(want)-models.MaxPageSize || rest[0].ID != want[models.MaxPageSize].ID {
			t.Errorf("the page after %d users: %d users starting %s, want %d starting %s", models.MaxPageSize, len(rest), rest[0].ID, len(want)-models.MaxPageSize, want[models.MaxPageSize].ID)
		}
	})
}

// allUsers pages through users, first at a time, failing past maxPages;
// it returns the users and the number of pages.
func allUsers(t *testing.T, ts *authtest.Server, token string, first, maxPages int) (usersPage, int) {
	t.Helper()
	var got usersPage
	var after string
	pages := 0
	for {
		page := users(t, ts, token, first, after)
		pages++
		got = append(got, page...)
		if len(page) < first {
			return got, pages
		}
		after = page[len(page)-1].Cursor
		if pages > maxPages {
			t.Fatal("paging does not end")
		}
	}
}

// TestUsersPageInput checks what users refuses: page sizes out of range and
// cursors authql did not issue, each with BAD_USER_INPUT and a message that
// says what is wrong; a user's own cursor is not an admin's key to the list.
func TestUsersPageInput(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "u@example.com", "password1")
		valid := users(t, ts, admin.Access, 1, "")[0].Cursor
		flip := func(s string, i int) string {
			b := []byte(s)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b)
		}
		for _, tc := range []struct {
			name    string
			vars    map[string]any
			message string
		}{
			{"FirstZero", map[string]any{"first": 0}, "first must be between 1 and 500"},
			{"FirstNegative", map[string]any{"first": -1}, "first must be between 1 and 500"},
			{"FirstOverMax", map[string]any{"first": 501}, "first must be between 1 and 500"},
			{"EmptyCursor", map[string]any{"after": ""}, "invalid cursor"},
			{"NotBase64", map[string]any{"after": "not a cursor!"}, "invalid cursor"},
			{"Truncated", map[string]any{"after": valid[:len(valid)-1]}, "invalid cursor"},
			{"Extended", map[string]any{"after": valid + "A"}, "invalid cursor"},
			{"Padded", map[string]any{"after": valid + "=="}, "invalid cursor"},
			{"VersionChanged", map[string]any{"after": flip(valid, 0)}, "invalid cursor"},
			// The last character carries 4 unused bits; another spelling of
			// the same bytes is not the cursor that was issued.
			{"NonCanonical", map[string]any{"after": valid[:len(valid)-1] + string(valid[len(valid)-1]+1)}, "invalid cursor"},
			{"StandardAlphabet", map[string]any{"after": "+" + valid[1:]}, "invalid cursor"},
			{"AnID", map[string]any{"after": user.UserID}, "invalid cursor"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.Do(t, admin.Access, `query($first: Int, $after: String) { users(first: $first, after: $after) { id } }`, tc.vars)
				if code := r.Code(t); code != models.BadUserInput || r.Errors[0].Message != tc.message {
					t.Errorf("%v: %s %q, want %s %q", tc.vars, code, r.Errors[0].Message, models.BadUserInput, tc.message)
				}
			})
		}
		t.Run("NotAdmin", func(t *testing.T) {
			r := ts.Do(t, user.Access, `query($after: String) { users(after: $after) { id } }`, map[string]any{"after": valid})
			if code := r.Code(t); code != models.Forbidden {
				t.Errorf("users as a non-admin with a cursor: %s, want %s", code, models.Forbidden)
			}
		})
		t.Run("CursorFromRegister", func(t *testing.T) {
			// The user register returns is the one in memory, not read
			// back: its cursor must still place the list right after it,
			// although PostgreSQL keeps only microseconds of its createdAt
			// (pgx truncates the cursor's time as it truncated the row's).
			for i := range 10 {
				r := ts.Do(t, "", `mutation($e: String!) { register(email: $e, password: "password1") { user { id cursor } } }`, map[string]any{"e": fmt.Sprintf("a%d@example.com", i)}).OK(t)
				next := ts.Register(t, fmt.Sprintf("b%d@example.com", i), "password1")
				page := users(t, ts, admin.Access, 1, r.Str("register", "user", "cursor"))
				if len(page) != 1 || page[0].ID != next.UserID {
					t.Fatalf("after the cursor of %s from register: %v, want %s", r.Str("register", "user", "id"), page, next.UserID)
				}
			}
		})
		t.Run("OwnCursor", func(t *testing.T) {
			// A user's own cursor is harmless (it shows only its id and
			// createdAt), so me may ask for it.
			r := ts.Do(t, user.Access, `{ me { id cursor } }`, nil).OK(t)
			if r.Str("me", "cursor") == "" {
				t.Error("me { cursor } is empty")
			}
		})
	})
}

// TestUsersConstantStatements counts the SQL statements of listing users
// with their roles and permissions: 500 users must cost what 5 cost.
func TestUsersConstantStatements(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		seedUsers(t, ts.DB, 600, func(i int) time.Time { return time.Date(2021, 1, 1, 0, 0, i, 0, time.UTC) },
			func(i int) []string {
				if i%2 == 0 {
					return []string{models.RoleAdmin, models.RoleUser}
				}
				return []string{models.RoleUser}
			})
		// Once first, so that what the admin's first request loads and
		// keeps (the user cache) is not counted against the list.
		users(t, ts, admin.Access, 5, "")
		flushAudit(t, ts) // the admin's login, written in the background
		sql := testdb.CountSQL(t, ts.DB)

		counts := map[int]int{}
		for _, first := range []int{5, 500} {
			before := sql.N.Load()
			page := users(t, ts, admin.Access, first, "")
			counts[first] = int(sql.N.Load() - before)
			if len(page) != first {
				t.Fatalf("users(first: %d): %d users", first, len(page))
			}
			withPerms := 0
			for _, u := range page {
				if len(u.Roles) == 0 {
					t.Fatalf("user %s without roles: roles were not loaded", u.ID)
				}
				if len(u.Permissions) > 0 {
					withPerms++
				}
			}
			if withPerms == 0 {
				t.Fatalf("users(first: %d): no user with permissions; half are admins", first)
			}
		}
		t.Logf("SQL statements: %d for 5 users, %d for 500", counts[5], counts[500])
		if counts[500] != counts[5] {
			t.Errorf("500 users cost %d statements, 5 users %d: the count grows with the page", counts[500], counts[5])
		}
		// The users, their user_roles rows, their roles.
		if counts[500] > 3 {
			t.Errorf("%d statements for one page, want at most 3", counts[500])
		}
		if counts[5] == 0 {
			t.Error("no statement counted: the counter does not see the server's database")
		}
	})
}

func TestSetUserRoles(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil)
		admin := ts.Admin(t)
		user := ts.Register(t, "user@example.com", "password1")
		set := func(token, id string, roles []string) authtest.Response {
			return ts.Do(t, token, `mutation($id: ID!, $r: [String!]!) { setUserRoles(userId: $id, roles: $r) { id roles } }`,
				map[string]any{"id": id, "r": roles})
		}
		cases := []struct {
			name, token, id string
			roles           []string
			wantCode        string
		}{
			{"UnknownRole", admin.Access, user.UserID, []string{"user", "wizard"}, models.BadUserInput},
			{"UnknownUser", admin.Access, uuid.NewString(), []string{"user"}, models.NotFound},
			{"NotAUUID", admin.Access, "42", []string{"user"}, models.NotFound},
			{"NotAnAdmin", user.Access, user.UserID, []string{"admin"}, models.Forbidden},
			{"NoToken", "", user.UserID, []string{"admin"}, models.Unauthenticated},
			{"LastAdminKeepsRole", admin.Access, admin.UserID, []string{"user"}, models.BadUserInput},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if code := set(tc.token, tc.id, tc.roles).Code(t); code != tc.wantCode {
					t.Errorf("code = %s, want %s", code, tc.wantCode)
				}
			})
		}
		t.Run("CaseInsensitive", func(t *testing.T) {
			r := set(admin.Access, user.UserID, []string{" Admin", "USER", "user"}).OK(t)
			if got := fmt.Sprint(r.Get("setUserRoles", "roles")); got != "[admin user]" {
				t.Errorf("roles = %s, want [admin user]", got)
			}
			// Role checks use the user's current roles: the token issued
			// before the change already has the new role's power.
			ts.Do(t, user.Access, `{ users { id } }`, nil).OK(t)
			// With two admins, one may lose the role.
			r = set(admin.Access, admin.UserID, []string{"user"}).OK(t)
			if got := fmt.Sprint(r.Get("setUserRoles", "roles")); got != "[user]" {
				t.Errorf("roles = %s, want [user]", got)
			}
		})
	})
}
