// Package subcommand dispatches `program <subcommand> [flags]` for the thin mains in cmd/:
// usage text, unknown names, -h, and the process exit status.
package subcommand

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Command is one subcommand; Run parses its own flags from args.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Main runs the subcommand named by os.Args with a context cancelled on SIGINT or SIGTERM,
// and exits with status 2 on error (after printing it, unless it was a request for help).
func Main(program string, commands []Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Dispatch(ctx, program, commands, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "%s: %s\n", program, err)
		}
		os.Exit(2)
	}
}

// Dispatch runs the command named by args[0] with the rest of args. No name, -h, --help or
// help print the usage; help returns flag.ErrHelp.
func Dispatch(ctx context.Context, program string, commands []Command, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, program, commands)
		if len(args) == 0 {
			return errors.New("missing subcommand")
		}
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.Name == args[0] {
			return c.Run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr, program, commands)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func usage(w io.Writer, program string, commands []Command) {
	width := 0
	for _, c := range commands {
		width = max(width, len(c.Name))
	}
	fmt.Fprintf(w, "usage: %s <subcommand> [flags]\n\nsubcommands:\n", program)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <subcommand> -h' for its flags.\n", program)
}
