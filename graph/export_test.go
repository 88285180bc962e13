package graph

// SetAddedHook runs f, until the test ends, each time a socket is added
// (see testHookAdded).
func SetAddedHook(f func(*Sockets)) func() {
	testHookAdded = f
	return func() { testHookAdded = nil }
}
