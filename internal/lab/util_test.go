package lab

import (
	"errors"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func itoa(i int) string { return strconv.Itoa(i) }

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
