package control

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Options tune a Server. Zero values take the defaults.
type Options struct {
	MaxRequest   int           // bytes; larger requests are refused
	MaxConns     int           // connections served at once; more wait in the listen backlog
	ReadTimeout  time.Duration // for the whole request
	WriteTimeout time.Duration // per write of the response, so a long listing may take longer
	Log          *slog.Logger  // nil discards
}

func (o *Options) defaults() {
	if o.MaxRequest <= 0 {
		o.MaxRequest = DefaultMaxRequest
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// ErrInUse means something answers on the socket path: most likely another
// gateway, whose socket must not be stolen.
var ErrInUse = errors.New("control socket in use")

// probeTimeout bounds the connect that tells a live socket from a stale one.
const probeTimeout = time.Second

// Server is a listening control socket. Create it with Listen, run it with
// Serve; Close (or Serve's ctx ending) removes the socket file.
type Server struct {
	path string
	ln   *net.UnixListener
	id   os.FileInfo // the socket file we created, so Close never removes another's
	opts Options

	closeOnce sync.Once
	closeErr  error
}

// Listen creates the socket at path with mode 0600. A file already there is
// replaced only when it is a socket nobody answers on (left by a gateway
// that crashed); a live socket yields ErrInUse and any other file an error.
//
// The socket is bound under a private temporary directory next to path,
// set to 0600 there and renamed into place, so it is never reachable with
// the looser mode the umask would give it and a stale file is replaced in
// one step.
func Listen(path string, opts Options) (*Server, error) {
	opts.defaults()
	if path == "" {
		return nil, errors.New("control: empty socket path")
	}
	stale, err := checkExisting(path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".tg")
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen: %w", err)
	}
	// The file is renamed away, and Close removes it by its final path.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Server, error) {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	id, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if stale {
		opts.Log.Warn("replaced a stale control socket", "path", path)
	}
	return &Server{path: path, ln: ln, id: id, opts: opts}, nil
}

// checkExisting reports whether path holds a stale socket that may be
// replaced, or an error when it holds anything that must be kept.
func checkExisting(path string) (stale bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("control: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return false, fmt.Errorf("control: %s exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		c.Close()
		return false, fmt.Errorf("%w: something answers on %s (another tungate running?)", ErrInUse, path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true, nil
	}
	// A full backlog (EAGAIN), a timeout or a permission problem all mean
	// the socket may well be alive: keep it.
	return false, fmt.Errorf("control: %s exists and cannot be probed, refusing to replace it: %w", path, err)
}

// Running reports whether a gateway answers on the control socket at path
// (a socket nobody answers on, or none, is not a running gateway).
func Running(path string) bool {
	_, err := checkExisting(path)
	return errors.Is(err, ErrInUse)
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops accepting and removes the socket file if it is still the one
// Listen created. Connections being served end by their deadlines or by
// Serve's ctx. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if fi, serr := os.Lstat(s.path); serr == nil && os.SameFile(fi, s.id) {
			if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}
