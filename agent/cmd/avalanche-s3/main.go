// Command avalanche-s3 is the builder's S3 client for an s3:// fleet
// cache. It links minio-go (pkg/s3cache) so the resident avalanche-agent
// does not: hosts read the bucket over HTTP and never need it, and the
// builder runs it only when builder.cacheURL is s3://.
//
//	avalanche-s3 missing --credentials FILE S3URL STOREPATH…
//	    prints, as JSON (pkg/s3cache/s3url.Missing), the paths the bucket
//	    does not hold whole and the narinfos of those it holds
//	avalanche-s3 upload --credentials FILE STAGE S3URL STOREPATH…
//	    uploads the paths from STAGE, a file:// binary cache nix copy
//	    wrote, each NAR before its narinfo
//
// It exits 1 when the bucket fails (unreachable, refusing the keys, an
// error status) and 2 on a usage error, with the reason on standard error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/avalanche-fleet/avalanche/pkg/s3cache"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// errUsage marks a command line avalanche-s3 cannot run.
var errUsage = errors.New("usage: avalanche-s3 missing|upload --credentials FILE [STAGE] S3URL STOREPATH…")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "avalanche-s3: %v\n", err)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}

// run runs one subcommand.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	creds := fs.String("credentials", "", "the bucket's keys, AWS shared-credentials format")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	args = fs.Args()
	var stage string
	if cmd == "upload" && len(args) > 0 {
		stage, args = args[0], args[1:]
	}
	if *creds == "" || len(args) < 2 || (cmd != "missing" && cmd != "upload") {
		return errUsage
	}
	loc, err := s3url.Parse(args[0])
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	bucket, err := s3cache.Open(loc, *creds)
	if err != nil {
		return err
	}
	paths := args[1:]
	if cmd == "upload" {
		return bucket.Upload(ctx, stage, paths)
	}
	missing, narinfos, err := bucket.Missing(ctx, paths)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(s3url.Missing{Missing: missing, Narinfos: narinfos})
}
