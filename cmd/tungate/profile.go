package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfileFromEnv starts a CPU profile when TUNGATE_CPUPROFILE names a
// file (`make profile` sets it), and returns the function that stops it and
// flushes the file; without the variable both are no-ops. An environment
// variable rather than a flag: the profile is a developer tool, and the
// gateway's command line stays what operators use.
func startProfileFromEnv() (stop func()) {
	path := os.Getenv("TUNGATE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tungate: TUNGATE_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "tungate: TUNGATE_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "tungate: TUNGATE_CPUPROFILE: %v\n", err)
		}
	}
}
