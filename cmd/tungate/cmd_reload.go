package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tungate/tungate/control"
)

// cmdReload asks the running gateway to reload its config file, exactly as
// SIGHUP does, and reports the outcome: on refusal the FILE:LINE:COL errors
// and exit status 1, the running policy staying in force.
func cmdReload(ctx context.Context, args []string, out io.Writer) error {
	cf, err := parseNoArgs("reload", args, false)
	if err != nil {
		return err
	}
	err = cf.client().Call(ctx, control.OpReload, nil, nil)
	var re *control.RemoteError
	if errors.As(err, &re) {
		return &exitError{1, fmt.Errorf("tungate reload: refused, the running policy stays:\n%s", re.Msg)}
	}
	if err != nil {
		return remoteFailure("reload", err)
	}
	_, err = fmt.Fprintln(out, "tungate reload: ok")
	return err
}
