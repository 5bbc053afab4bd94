package subcommand

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	var got []string
	commands := []Command{{"echo", "print the arguments", func(_ context.Context, args []string, stdout, _ io.Writer) error {
		got = args
		_, err := io.WriteString(stdout, strings.Join(args, " "))
		return err
	}}}
	f := func(args []string, wantErr error, wantUsage bool) {
		t.Helper()
		var out, errOut strings.Builder
		err := Dispatch(context.Background(), "prog", commands, args, &out, &errOut)
		if (wantErr == nil) != (err == nil) || (wantErr != nil && wantErr != flag.ErrHelp && err.Error() != wantErr.Error()) ||
			(wantErr == flag.ErrHelp && !errors.Is(err, flag.ErrHelp)) {
			t.Fatalf("unexpected error for %q; got %v; want %v", args, err, wantErr)
		}
		if hasUsage := strings.Contains(errOut.String(), "usage: prog <subcommand>"); hasUsage != wantUsage {
			t.Fatalf("unexpected usage output for %q: %q", args, errOut.String())
		}
	}
	f([]string{"echo", "a", "b"}, nil, false)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("unexpected arguments; got %q; want [a b]", got)
	}
	f(nil, errors.New("missing subcommand"), true)
	f([]string{"-h"}, flag.ErrHelp, true)
	f([]string{"help"}, flag.ErrHelp, true)
	f([]string{"nope"}, errors.New(`unknown subcommand "nope"`), true)
}
