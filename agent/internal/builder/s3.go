package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// S3HelperName is the file name of the S3 helper binary, found next to
// the agent unless builder.s3Helper names it.
const S3HelperName = "avalanche-s3"

// StageNix is what S3Cache needs from rebuild.Nix.
type StageNix interface {
	Valid(ctx context.Context, path string) (bool, error)
	Closure(ctx context.Context, out ...string) ([]string, error)
	Copy(ctx context.Context, storeURL, path string) error
}

// S3Cache is an s3:// fleet cache. Nix writes the NARs of the paths the
// bucket lacks into a local file:// binary cache (seeded with the
// narinfos the bucket already has, so Nix skips those); the avalanche-s3
// helper, which holds the S3 client, tells what the bucket lacks and
// uploads. The daemon links no S3 client.
type S3Cache struct {
	// Helper is the path of avalanche-s3.
	Helper string
	// URL is the s3:// store URL; CredentialsFile the bucket's keys.
	URL, CredentialsFile string
	Nix                  StageNix
	// StageDir is where Copy has Nix write the NARs (a temporary
	// directory under it, removed after); empty: os.TempDir.
	StageDir string
}

// MissingFrom returns the paths of path's closure the bucket does not
// hold whole, or path itself when it is not in the local store.
func (c *S3Cache) MissingFrom(ctx context.Context, path string) ([]string, error) {
	closure, err := c.closure(ctx, path)
	if err != nil || closure == nil {
		return []string{path}, err
	}
	m, err := c.missing(ctx, closure)
	return m.Missing, err
}

// Copy uploads what the bucket lacks of path's closure and then checks
// that the bucket holds the whole closure: when Copy returns nil, a host
// can substitute every path of it. The bucket's failures are the cache's
// trouble (fault.Transient), never the commit's.
func (c *S3Cache) Copy(ctx context.Context, path string) error {
	closure, err := c.closure(ctx, path)
	if err != nil {
		return err
	}
	if closure == nil {
		return fmt.Errorf("copying %s to %s: not in the local store", filepath.Base(path), c.URL)
	}
	m, err := c.missing(ctx, closure)
	if err != nil || len(m.Missing) == 0 {
		return err
	}
	if err := c.upload(ctx, path, m); err != nil {
		return fmt.Errorf("copying %s to %s: %w", filepath.Base(path), c.URL, err)
	}
	if still, err := c.missing(ctx, closure); err != nil {
		return err
	} else if len(still.Missing) > 0 {
		return fault.New(fault.Transient, fmt.Errorf("%s lacks %d paths of %s after the upload, first %s",
			c.URL, len(still.Missing), filepath.Base(path), filepath.Base(still.Missing[0])))
	}
	return nil
}

// closure is path's closure, or nil when path is not in the local store.
func (c *S3Cache) closure(ctx context.Context, path string) ([]string, error) {
	if ok, err := c.Nix.Valid(ctx, path); err != nil || !ok {
		return nil, err
	}
	return c.Nix.Closure(ctx, path)
}

func (c *S3Cache) missing(ctx context.Context, paths []string) (s3url.Missing, error) {
	var m s3url.Missing
	out, err := c.run(ctx, append([]string{"missing", "--credentials", c.CredentialsFile, c.URL}, paths...))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fault.New(fault.Transient, fmt.Errorf("decoding %s missing's output: %w", c.Helper, err))
	}
	return m, nil
}

// upload has Nix write path's closure into a stage that already holds
// the narinfos of the paths the bucket has, then the helper puts the
// paths the bucket lacks.
func (c *S3Cache) upload(ctx context.Context, path string, m s3url.Missing) error {
	stage, err := os.MkdirTemp(c.StageDir, "s3cache-")
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(stage)
	for p, narinfo := range m.Narinfos {
		if err := os.WriteFile(filepath.Join(stage, s3url.NarinfoKey(p)), []byte(narinfo), 0o644); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	if err := c.Nix.Copy(ctx, "file://"+stage, path); err != nil {
		return err
	}
	_, err = c.run(ctx, append([]string{"upload", "--credentials", c.CredentialsFile, stage, c.URL}, m.Missing...))
	return err
}

// run runs the helper and returns its standard output. Its failures (the
// bucket unreachable, refusing the keys, a 5xx) are the cache's trouble:
// fault.Transient, retried, never a verdict on the commit.
func (c *S3Cache) run(ctx context.Context, args []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Helper, args...)
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fault.New(fault.Transient, fmt.Errorf("%s: %w: %s", argv(c.Helper, args), err, tail(stderr.Bytes(), 2048)))
	}
	return stdout.Bytes(), nil
}

// argv is the command line for an error message: the store paths of a
// closure are cut to their count.
func argv(helper string, args []string) string {
	const shown = 6
	if len(args) > shown {
		return fmt.Sprintf("%s %q … (%d store paths)", helper, args[:shown-1], len(args)-(shown-1))
	}
	return fmt.Sprintf("%s %q", helper, args)
}

// tail returns at most the last n bytes of b, trimmed.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
