package s3cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minio/minio-go/v7"
)

// Nix is what Cache needs from rebuild.Nix.
type Nix interface {
	Valid(ctx context.Context, path string) (bool, error)
	Closure(ctx context.Context, out ...string) ([]string, error)
	Copy(ctx context.Context, storeURL, path string) error
}

// Cache is a closure-level view of a Bucket for the builder: copy a
// closure into it, tell what of a closure it lacks.
type Cache struct {
	Bucket *Bucket
	Nix    Nix
	// StageDir is where Copy has Nix write the NARs before uploading
	// them (a temporary directory under it, removed after); empty: os.TempDir.
	StageDir string
}

// MissingFrom returns the paths of path's closure the bucket does not
// hold whole. When path is not valid in the local store it returns path
// itself, so the caller builds it again.
func (c *Cache) MissingFrom(ctx context.Context, path string) ([]string, error) {
	closure, err := c.closure(ctx, path)
	if err != nil || closure == nil {
		return []string{path}, err
	}
	missing, _, err := c.Bucket.Missing(ctx, closure)
	return missing, err
}

// Copy uploads what the bucket lacks of path's closure, each NAR before
// its narinfo, and then checks that the bucket holds the whole closure:
// when Copy returns nil, a host can substitute every path of it.
func (c *Cache) Copy(ctx context.Context, path string) error {
	closure, err := c.closure(ctx, path)
	if err != nil {
		return err
	}
	if closure == nil {
		return fmt.Errorf("copying %s to bucket %s: not in the local store", filepath.Base(path), c.Bucket.name)
	}
	missing, narinfos, err := c.Bucket.Missing(ctx, closure)
	if err != nil || len(missing) == 0 {
		return err
	}
	if err := c.upload(ctx, path, missing, narinfos); err != nil {
		return fmt.Errorf("copying %s to bucket %s: %w", filepath.Base(path), c.Bucket.name, err)
	}
	if still, _, err := c.Bucket.Missing(ctx, closure); err != nil {
		return err
	} else if len(still) > 0 {
		return fmt.Errorf("bucket %s lacks %d paths of %s after the upload, first %s",
			c.Bucket.name, len(still), filepath.Base(path), filepath.Base(still[0]))
	}
	return nil
}

// closure is path's closure, or nil when path is not in the local store.
func (c *Cache) closure(ctx context.Context, path string) ([]string, error) {
	if ok, err := c.Nix.Valid(ctx, path); err != nil || !ok {
		return nil, err
	}
	return c.Nix.Closure(ctx, path)
}

// upload has Nix write missing into a local binary cache that already
// holds the narinfos of the paths the bucket has (so Nix skips them), then
// puts each NAR and then its narinfo.
func (c *Cache) upload(ctx context.Context, path string, missing []string, held map[string]string) error {
	stage, err := os.MkdirTemp(c.StageDir, "s3cache-")
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(stage)
	for p, narinfo := range held {
		if err := os.WriteFile(filepath.Join(stage, NarinfoKey(p)), []byte(narinfo), 0o644); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	if err := c.Nix.Copy(ctx, "file://"+stage, path); err != nil {
		return err
	}
	if err := c.put(ctx, stage, "nix-cache-info", "text/x-nix-cache-info"); err != nil {
		return err
	}
	for _, p := range missing {
		if err := c.putPath(ctx, stage, p); err != nil {
			return err
		}
	}
	return nil
}

// putPath uploads the NAR of p, then its narinfo: a host that finds the
// narinfo finds the NAR.
func (c *Cache) putPath(ctx context.Context, stage, p string) error {
	key := NarinfoKey(p)
	narinfo, err := os.ReadFile(filepath.Join(stage, key))
	if err != nil {
		return fmt.Errorf("nix copy wrote no narinfo for %s: %w", filepath.Base(p), err)
	}
	nar, err := narURL(string(narinfo))
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if err := c.put(ctx, stage, nar, "application/x-nix-nar"); err != nil {
		return err
	}
	return c.put(ctx, stage, key, "text/x-nix-narinfo")
}

func (c *Cache) put(ctx context.Context, stage, key, contentType string) error {
	_, err := c.Bucket.client.FPutObject(ctx, c.Bucket.name, key, filepath.Join(stage, filepath.FromSlash(key)),
		minio.PutObjectOptions{ContentType: contentType})
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nix copy wrote no %s: %w", key, err)
	} else if err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	return nil
}
