package s3cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minio/minio-go/v7"

	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// Upload puts paths from stage, a file:// binary cache Nix wrote (nix copy
// --to file://STAGE), into the bucket: its nix-cache-info, then for each
// path its NAR and then its narinfo, so a host that finds a narinfo finds
// the NAR. Narinfos in stage for other paths (the ones the bucket already
// held, seeded so Nix skipped them) are not uploaded again.
func (b *Bucket) Upload(ctx context.Context, stage string, paths []string) error {
	if err := b.put(ctx, stage, "nix-cache-info", "text/x-nix-cache-info"); err != nil {
		return err
	}
	for _, p := range paths {
		if err := b.putPath(ctx, stage, p); err != nil {
			return err
		}
	}
	return nil
}

// putPath uploads the NAR of p, then its narinfo.
func (b *Bucket) putPath(ctx context.Context, stage, p string) error {
	key := s3url.NarinfoKey(p)
	narinfo, err := os.ReadFile(filepath.Join(stage, key))
	if err != nil {
		return fmt.Errorf("nix copy wrote no narinfo for %s: %w", filepath.Base(p), err)
	}
	nar, err := narURL(string(narinfo))
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if err := b.put(ctx, stage, nar, "application/x-nix-nar"); err != nil {
		return err
	}
	return b.put(ctx, stage, key, "text/x-nix-narinfo")
}

func (b *Bucket) put(ctx context.Context, stage, key, contentType string) error {
	_, err := b.client.FPutObject(ctx, b.name, key, filepath.Join(stage, filepath.FromSlash(key)),
		minio.PutObjectOptions{ContentType: contentType})
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nix copy wrote no %s: %w", key, err)
	} else if err != nil {
		return fmt.Errorf("putting %s into bucket %s: %w", key, b.name, err)
	}
	return nil
}
