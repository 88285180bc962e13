package main

import (
	"os"
	"testing"
)

// runMainEnv set to 1 makes the test binary run authql's main instead of
// the tests: TestShutdownOnSIGTERM starts the program as a process of its
// own this way, without building it.
const runMainEnv = "AUTHQL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
