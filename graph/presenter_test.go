package graph

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/authql/authql/models"
)

// TestPresenterNeverReasonless: should an UNAUTHENTICATED without a reason
// slip past TestUnauthenticatedHasReason, the answer still carries one
// (TOKEN_INVALID: sign in again) and the log names it as a bug; one with a
// reason keeps its own.
func TestPresenterNeverReasonless(t *testing.T) {
	var buf bytes.Buffer
	present := errorPresenter(slog.New(slog.NewTextHandler(&buf, nil)))
	gerr := present(context.Background(), &models.Error{Code: models.Unauthenticated, Message: "no reason"})
	if gerr.Extensions["code"] != models.Unauthenticated || gerr.Extensions["reason"] != models.ReasonTokenInvalid {
		t.Errorf("extensions = %v, want UNAUTHENTICATED with reason TOKEN_INVALID", gerr.Extensions)
	}
	if !strings.Contains(buf.String(), "UNAUTHENTICATED without a reason") {
		t.Errorf("log = %q, want the missing reason logged", buf.String())
	}
	gerr = present(context.Background(), models.Unauthenticatedf(models.ReasonTokenExpired, "expired"))
	if gerr.Extensions["reason"] != models.ReasonTokenExpired {
		t.Errorf("extensions = %v, want reason TOKEN_EXPIRED kept", gerr.Extensions)
	}
}
