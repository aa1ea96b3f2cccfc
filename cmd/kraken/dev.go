package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/console"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/engine/dev"
)

// runDev is `kraken dev`: the bot on this machine, with the terminal as
// its one Slack channel and a data directory as its cluster.
func runDev(ctx context.Context, e env, stdin io.Reader, args []string) error {
	fset := flag.NewFlagSet("dev", flag.ContinueOnError)
	data := fset.String("data", ".kraken-dev", "where enclaves, tentacles, the bot's records and its log are kept")
	denoPath := fset.String("deno", "", "the Deno binary (default $KRAKEN_DENO, the pinned install, PATH)")
	examples := fset.String("examples", "examples", "the tentacles `/kraken deploy NAME` finds by name")
	user := fset.String("user", "you", "who you are in the channel")
	verbose := fset.Bool("v", false, "log debug messages")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: dev takes no arguments", errUsage)
	}
	deno, err := engine.FindDeno(*denoPath, e.getenv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	// The log goes to a file: the terminal is the chat, and tentacles'
	// log lines would drown it (`/kraken logs` shows them there).
	logFile, err := os.OpenFile(filepath.Join(*data, "kraken.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer logFile.Close()
	log := env{stderr: logFile}.logger(*verbose)

	ring, err := devKeyring(e.getenv, *data, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	db, err := openStore(ctx, filepath.Join(*data, "kraken.db"), ring, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer db.Close()
	cluster, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(*data, "cluster"), Deno: deno, Logger: log})
	if err != nil {
		return err
	}
	defer cluster.Close()
	ch, err := console.OpenChannel(filepath.Join(*data, "channel.json"), console.ChannelState{
		TeamID: "T-LOCAL", ID: "C-LOCAL", Name: "local", Members: []string{*user},
	})
	if err != nil {
		return err
	}
	var exfs fs.FS
	if fi, err := os.Stat(*examples); err == nil && fi.IsDir() {
		exfs = os.DirFS(*examples)
	} else {
		fmt.Fprintf(e.stderr, "kraken: no examples in %s (--examples DIR); `!upload` a tentacle folder to deploy it.\n", *examples)
	}
	ids, stopLogin, err := startLogin(ctx, e.getenv, db, nil, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer stopLogin()
	exo, err := devExoskeleton(ctx, e.getenv, *data, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer exo.close()
	reg, err := command.New(command.Config{
		Enclaves: cluster.Enclaves(), Tentacles: cluster.Tentacles(), Store: db, Channels: ch,
		Examples: exfs, Logger: log, Identities: ids, Exoskeleton: exo.Exoskeleton,
	})
	if err != nil {
		return err
	}
	if cfg, ok := llmSettings(e.getenv); ok {
		if _, err := attachChat(reg, db, cfg, deno, log, nil); err != nil {
			return err
		}
	}
	con, err := console.New(console.Config{
		In: stdin, Out: e.stdout, Commands: reg, Channel: ch, User: *user,
		ImageDir: filepath.Join(*data, "pictures"), Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "The Kraken on this machine: you are @%s in channel #%s (everything is kept in %s).\n", *user, ch.Ref().Name, *data)
	fmt.Fprintln(e.stdout, "Type /kraken provision (or !invite, then !click 1), then /kraken deploy hello-fanout and !confirm,")
	fmt.Fprintln(e.stdout, "then /kraken run hello-fanout. /kraken help lists the bot's commands, !help the console's; Ctrl-D quits.")
	fmt.Fprintln(e.stdout)
	err = con.Run(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stdout, "\nStopped.")
		return nil
	}
	return err
}
