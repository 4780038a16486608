package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultClientTimeout bounds a whole call unless the caller's ctx says
// otherwise; a reload compiles the policy, a listing may be long.
const DefaultClientTimeout = 60 * time.Second

// maxResponse bounds a non-streamed response; the gateway is trusted, this
// only keeps a confused peer from eating the CLI's memory.
const maxResponse = 64 << 20

// Client talks to one gateway's control socket.
type Client struct {
	Path string
	// V is the protocol version requests carry: MinVersion when 0, so a
	// gateway of any age answers; set Version to use what version 2 added
	// (filters, events), which an older gateway then refuses by name.
	V int
}

func (c Client) version() int {
	if c.V == 0 {
		return MinVersion
	}
	return c.V
}

// Call sends op with args (nil for none) and decodes the response's data
// into out (nil to discard it). A refusal by the gateway is a *RemoteError.
func (c Client) Call(ctx context.Context, op string, args, out any) error {
	return c.exchange(ctx, op, args, false, func(r io.Reader) error {
		var resp Response
		if err := json.NewDecoder(io.LimitReader(r, maxResponse)).Decode(&resp); err != nil {
			return fmt.Errorf("control: bad response: %w", err)
		}
		if err := checkResponse(c.version(), resp.V, resp.OK, resp.Error); err != nil {
			return err
		}
		if out != nil && len(resp.Data) > 0 {
			if err := json.Unmarshal(resp.Data, out); err != nil {
				return fmt.Errorf("control: bad response data: %w", err)
			}
		}
		return nil
	})
}

// Stream sends op and calls each for every element of the array the
// response carries, decoding them one at a time with dec.Decode, so a long
// listing is never held whole.
func (c Client) Stream(ctx context.Context, op string, args any, each func(dec *json.Decoder) error) error {
	return c.stream(ctx, op, args, false, each)
}

// Follow is Stream for a live feed (OpConntrackEvents): it has no default
// time limit and runs until ctx ends, each fails, or the gateway ends it.
func (c Client) Follow(ctx context.Context, op string, args any, each func(dec *json.Decoder) error) error {
	return c.stream(ctx, op, args, true, each)
}

func (c Client) stream(ctx context.Context, op string, args any, live bool, each func(dec *json.Decoder) error) error {
	return c.exchange(ctx, op, args, live, func(r io.Reader) error {
		dec := json.NewDecoder(r)
		if err := expectDelim(dec, '{'); err != nil {
			return err
		}
		var (
			v       int
			ok      bool
			msg     string
			gotData bool
		)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("control: bad response: %w", err)
			}
			key, _ := tok.(string)
			switch key {
			case "v":
				err = dec.Decode(&v)
			case "ok":
				err = dec.Decode(&ok)
			case "error":
				err = dec.Decode(&msg)
			case "data":
				// v and ok precede data on the wire.
				if err := checkResponse(c.version(), v, ok, msg); err != nil {
					return err
				}
				gotData = true
				err = streamArray(dec, each)
			default:
				var skip json.RawMessage
				err = dec.Decode(&skip)
			}
			if err != nil {
				return err
			}
		}
		if err := checkResponse(c.version(), v, ok, msg); err != nil {
			return err
		}
		if !gotData {
			return errors.New("control: response without data")
		}
		return nil
	})
}

func streamArray(dec *json.Decoder, each func(*json.Decoder) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("control: bad response: %w", err)
	}
	if tok == nil { // null: nothing to list
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("control: response data is not a list")
	}
	for dec.More() {
		if err := each(dec); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("control: bad response: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("control: bad response: got %v, want %q", tok, want)
	}
	return nil
}

// checkResponse checks a response to a request of version want. A
// refusal is reported in the gateway's words whatever its version (that is
// how an older gateway explains it does not speak want).
func checkResponse(want, v int, ok bool, msg string) error {
	if ok && v != want {
		return fmt.Errorf("control: gateway answered in protocol version %d, this tungate asked in %d", v, want)
	}
	if !ok || msg != "" {
		if msg == "" {
			msg = "request failed"
		}
		return &RemoteError{Msg: msg}
	}
	return nil
}

// exchange dials, sends the request and hands the connection to read.
// Unless live, a ctx without a deadline gets DefaultClientTimeout.
func (c Client) exchange(ctx context.Context, op string, args any, live bool, read func(io.Reader) error) error {
	if _, ok := ctx.Deadline(); !ok && !live {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultClientTimeout)
		defer cancel()
	}
	req := Request{V: c.version(), Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return err
		}
		req.Args = b
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway's control socket: %w (is tungate running? -s SOCK selects the socket)", err)
	}
	defer conn.Close()
	// Closing the connection is what unblocks reads when ctx ends early.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("control: send: %w", ctxErr(ctx, err))
	}
	if err := read(bufio.NewReader(conn)); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}

// ctxErr prefers the context's reason over the closed-connection error its
// cancellation caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.As(err, new(*RemoteError)) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
