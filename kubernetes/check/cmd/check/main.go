// Command check runs every check of kubernetes/check on the repository and
// prints what it found, the site values still unset and the subcharts it
// could not render. Run it from kubernetes/check; -first-sync also fails on
// unset site values, which a first sync needs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fl := flag.NewFlagSet("check", flag.ContinueOnError)
	repo := fl.String("repo", "../..", "the repository root")
	firstSync := fl.Bool("first-sync", false, "fail while a site value is unset")
	if err := fl.Parse(args); err != nil {
		return err
	}
	scratch, err := os.MkdirTemp("", "k8s-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	r := check.Check(ctx, *repo, scratch)
	fmt.Fprintf(out, "%d Applications, %d objects checked\n", r.Apps, r.Objects)
	for _, u := range r.Unrendered {
		fmt.Fprintf(out, "not rendered: %s\n", u)
	}
	for _, u := range r.Unset {
		fmt.Fprintf(out, "unset site value: %s (%s)\n", u, check.SiteFile)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(out, "FAIL: %v\n", e)
	}
	switch {
	case len(r.Errors) > 0:
		return fmt.Errorf("%d problems", len(r.Errors))
	case *firstSync && len(r.Unset) > 0:
		return fmt.Errorf("%d site values unset; a first sync needs them", len(r.Unset))
	}
	return nil
}
