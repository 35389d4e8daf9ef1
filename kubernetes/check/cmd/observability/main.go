// Command observability writes what the cluster needs to watch the fleet
// (scrape targets from the inventory, alert rules, the fleet dashboard)
// into kubernetes/base/infra/observability. Run it from kubernetes/check
// after changing the inventory, the rules or the dashboard; with -check it
// only says which committed files are stale.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/observability"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("observability", flag.ContinueOnError)
	onlyCheck := fl.Bool("check", false, "compare with the committed files; write nothing")
	root := fl.String("root", "../..", "the repository root")
	if err := fl.Parse(args); err != nil {
		return err
	}
	files, err := observability.Files(ctx, *root)
	if err != nil {
		return err
	}
	stale := observability.Stale(*root, files)
	if *onlyCheck {
		if len(stale) > 0 {
			return fmt.Errorf("stale (run go run ./cmd/observability): %s", strings.Join(stale, ", "))
		}
		return nil
	}
	for _, p := range stale {
		if err := os.WriteFile(filepath.Join(*root, p), files[p], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", p)
	}
	return nil
}
