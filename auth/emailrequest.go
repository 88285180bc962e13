package auth

// Proof is what a mailed request is answered with: the link's token, or
// the request's id with the mailed code.
type Proof struct {
	Token     string
	RequestID string
	Code      string
}
